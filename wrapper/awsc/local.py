"""The local cloud: the EC2 emulator and the node agent, run in the background on this machine.

``awsc local start`` starts both (or finds them running), ``awsc local stop`` stops them and
removes their containers, and ``--local`` on a command points it at them: the same playbooks,
inventory and roles, with only the endpoint changed, nodes reached at their private addresses,
and the shared file system this kernel supports (sshfs). State (pids, port, logs, volume files)
lives in ``$XDG_STATE_HOME/awsc/local``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from awsc import paths
from awsc.errors import AwscError

IMAGE = "localhost/awsc-node:bookworm"
REGION = "us-east-1"
# Julia comes from julialang.org, which this machine may not reach: a mirror in julialang's layout
# (runtimes_julia_mirror) brings it into the local image; without one it is left out.
JULIA_MIRROR = os.environ.get("AWSC_JULIA_MIRROR", "")
# What differs from a launch on AWS, as extra-vars of the playbooks.
EXTRAVARS = {
    "shared_fs_type": "sshfs",
    # Nodes are reached from this machine only.
    "ssh_cidr": "127.0.0.1/32",
    # The runtimes come with a baked image (`awsc image bake --local`); installing them on every
    # node from the bare node image would take minutes of apt.
    "configure_runtimes": "{{ awsc_image | default('') | length > 0 }}",
    "runtimes_julia": bool(JULIA_MIRROR),
    **({"runtimes_julia_mirror": JULIA_MIRROR} if JULIA_MIRROR else {}),
    # An image's NFS server is the one containers can run (the kernel server needs kernel nfsd).
    "shared_fs_nfs_server": "ganesha",
}


def state_dir() -> Path:
    return paths.state_dir() / "local"


def _pid(daemon: str) -> int | None:
    """The daemon's pid while it runs (a dead one not yet reaped does not count)."""
    try:
        pid = int((state_dir() / f"{daemon}.pid").read_text())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The state follows the parenthesised command name; Z: exited.
    return None if stat.rsplit(")", 1)[1].split()[0] == "Z" else pid


def _emulator_address() -> str:
    return "http://127.0.0.1:" + (state_dir() / "emulator.port").read_text().strip()


def endpoint() -> str | None:
    """The emulator's address when the local cloud runs."""
    return _emulator_address() if _pid("emulator") and _pid("agent") else None


def _spawn(daemon: str, args: list[str], env: dict[str, str]) -> None:
    log = (state_dir() / f"{daemon}.log").open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    (state_dir() / f"{daemon}.pid").write_text(str(process.pid))


def start() -> str:
    """Starts the emulator and the agent unless they run; returns the emulator's address."""
    if running := endpoint():
        return running
    if subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True).returncode != 0:
        raise AwscError(f"The node image {IMAGE} is missing: build it with `make image`.")
    from awsc.emulator import free_port, wait_until_listening

    state_dir().mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    env.setdefault("CONTAINERS_CONF", str(paths.project_dir() / "images" / "containers.conf"))
    # When only the agent stopped, the emulator is kept: it holds every cluster's state.
    if not (_pid("emulator") and (state_dir() / "emulator.port").exists()):
        stop_daemons()
        port = free_port()
        amis = Path(__file__).resolve().parent / "data" / "local-amis.json"
        emulator = ["awsc.emulator", "-H", "127.0.0.1", "-p", str(port)]
        _spawn("emulator", emulator, dict(env, MOTO_AMIS_PATH=str(amis), AWSC_EMULATOR_IMAGES="agent"))
        (state_dir() / "emulator.port").write_text(str(port))
        if not wait_until_listening(port, timeout=30):
            stop_daemons()
            raise AwscError(f"The local EC2 emulator did not start: see {state_dir() / 'emulator.log'}.")
    address = _emulator_address()
    _spawn("agent", ["awsc.agent", "--endpoint", address, "--state-dir", str(state_dir())], env)
    return address


def stop_daemons() -> None:
    for daemon in ("agent", "emulator"):
        if pid := _pid(daemon):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if _pid(daemon) is None:
                    break
                time.sleep(0.1)
        (state_dir() / f"{daemon}.pid").unlink(missing_ok=True)


def stop() -> int:
    """Stops the local cloud and removes its containers (the emulator forgets its instances
    when it stops). Volume files stay: the next start makes them volumes again, with new ids.
    Returns how many containers were removed."""
    stop_daemons()
    from awsc.agent import LABEL, detach_loops

    names = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if names:
        subprocess.run(["podman", "rm", "--force", *names], capture_output=True)
    # No container uses the volumes' loop devices any more; the files stay.
    for image in (state_dir() / "volumes").glob("*.img"):
        detach_loops(image)
    return len(names)


def extravars(address: str) -> dict:
    """EXTRAVARS, and where the nodes reach the EC2 API: the agent's relay on the network's gateway
    (on AWS the master uses the region's endpoint with its instance profile)."""
    from awsc.agent import VPC_GATEWAY

    return {**EXTRAVARS, "cluster_ec2_endpoint": f"http://{VPC_GATEWAY}:{address.rsplit(':', 1)[1]}"}


def environment(address: str) -> dict[str, str]:
    """What --local sets for playbook runs and AWS queries."""
    return {
        "AWS_ENDPOINT_URL": address,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": REGION,
        "AWSC_CONNECT": "private",
        # Tells awsc's playbook runs to add EXTRAVARS.
        "AWSC_LOCAL": "1",
    }


def use(autostart: bool = False) -> None:
    """Points this process (and the runs it starts) at the local cloud."""
    address = start() if autostart else endpoint()
    if not address:
        raise AwscError("The local cloud is not running: start it with `awsc local start`.")
    os.environ.update(environment(address))
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        os.environ.pop(variable, None)
