"""One change at a time per cluster: the commands that change a cluster hold its lock.

The lock is ``flock`` on ``$XDG_STATE_HOME/awsc/<cluster>/lock``, so it is let go when its holder
exits, however it ends; the file says who holds it (command, pid, since when) for the one who waits.
It guards this machine's awsc runs of one cluster; two machines are not fenced against each other.
"""

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator

from awsc import paths
from awsc.errors import AwscError

# Seconds a second command waits for the lock before it gives up (AWSC_LOCK_WAIT overrides).
WAIT = 10.0


@contextlib.contextmanager
def cluster(name: str, command: str) -> Iterator[None]:
    path = paths.state_dir() / name / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = float(os.environ.get("AWSC_LOCK_WAIT", WAIT))
    with path.open("a+") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AwscError(_held_by(path, name)) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%H:%M:%S")
        json.dump({"command": command, "pid": os.getpid(), "since": since, "argv": sys.argv[1:]}, handle)
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def _held_by(path, name: str) -> str:
    try:
        holder = json.loads(path.read_text())
        who = f"`awsc {holder['command']} {name}` (pid {holder['pid']}, since {holder['since']})"
    except (OSError, ValueError, KeyError):
        who = "another awsc command"
    return f"Cluster {name} is being changed by {who}: wait until it ends, then run this again."
