"""Runs one playbook through ansible-runner: progress from its events, a short failure summary.

The one place that builds ansible-runner's arguments (as ansible-navigator does):

- ``private_data_dir``: ``$XDG_STATE_HOME/awsc/<cluster>/runs/<timestamp>-<verb>/``, kept after the run:
  ``artifacts/<ident>/stdout`` is Ansible's full output, ``job_events/`` every event;
- ``project_dir``: the repository (see :mod:`awsc.paths`), so ``ansible.cfg`` and the inventory
  apply as they do for ``ansible-playbook`` run from there;
- the environment: ansible-runner seeds the job's environment with ours, so the run is made with
  only what Ansible needs (``PATH``, ``HOME``, locale, ``XDG_*``, ``AWS_*``, ``ANSIBLE_*``,
  ``AWSC_*``, proxies, ``SSH_AUTH_SOCK``), plus ``AWSC_CLUSTER`` (the inventory's filter),
  ``AWS_REGION`` (the inventory's region) and ``ANSIBLE_CONFIG``;
- ``event_handler`` feeds the progress display (play = phase, current task, hosts done/total) and
  collects failures and facts; ``-v`` prints Ansible's own output instead;
- ``cancel_callback``: the first Ctrl-C asks ansible-runner to stop the playbook, which it does
  by terminating ``ansible-playbook``; awsc then says which steps had already changed something.
"""

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from awsc import cloud, paths

PASS_THROUGH = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SSH_AUTH_SOCK")
PASS_PREFIXES = ("AWS_", "ANSIBLE_", "AWSC_", "XDG_", "LC_")
PROXIES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


@dataclass
class Failure:
    task: str
    host: str
    message: str


@dataclass
class Result:
    playbook: str
    status: str  # successful | failed | canceled | timeout
    rc: int
    log: Path
    failures: list[Failure] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed_tasks: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    current_task: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def fact(self, name: str, default: Any = None) -> Any:
        for facts in self.facts.values():
            if name in facts:
                return facts[name]
        return default


def job_environment(cluster: str | None, region: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASS_THROUGH or k in PROXIES or k.startswith(PASS_PREFIXES)}
    env["ANSIBLE_CONFIG"] = str(paths.project_dir() / "ansible.cfg")
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "/usr/bin:/bin")])
    # The inventory's and amazon.aws's boto3 clients retry throttled calls as awsc's own do.
    env.setdefault("AWS_RETRY_MODE", "adaptive")
    env.setdefault("AWS_MAX_ATTEMPTS", str(cloud.retry_attempts()))
    # ansible-runner turns host key checking off unless told; the inventory checks every node's key.
    env["ANSIBLE_HOST_KEY_CHECKING"] = "True"
    if cluster:
        env["AWSC_CLUSTER"] = cluster
    if region:
        env["AWS_REGION"] = region
    return env


@contextlib.contextmanager
def only_environment(env: dict[str, str]):
    """os.environ is exactly `env` while inside (ansible-runner copies os.environ into the job)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _message(res: dict[str, Any]) -> str:
    for key in ("msg", "reason", "stderr", "module_stderr"):
        value = res.get(key)
        if value:
            text = value if isinstance(value, str) else str(value)
            return " ".join(text.split())
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            return _message(item)
    return "no message"


class Progress:
    """What the events say, shown live: rich on a terminal, one line per phase otherwise."""

    def __init__(self, verbose: bool, console):
        self.verbose = verbose
        self.console = console
        self.live = console.is_terminal and not verbose
        self.phase = ""
        self.task = ""
        self.tasks_done = 0
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.failures: list[Failure] = []
        self.facts: dict[str, dict[str, Any]] = {}
        self.changed_tasks: list[str] = []
        self.messages: list[str] = []
        self._progress = None
        self._bar = None
        self.began = time.monotonic()
        self.began_events = False

    def __enter__(self):
        if self.live:
            from rich.progress import Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = RichProgress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[phase]}[/bold]"),
                TextColumn("{task.description}"),
                TextColumn("[dim]{task.fields[hosts]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.__enter__()
            self._bar = self._progress.add_task("starting", total=None, phase="", hosts="")
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
            # The live display is transient: leave one line per run behind.
            mark = "[red]✗[/red]" if self.failures else "[green]✓[/green]"
            changed = ", ".join(self.changed_tasks) or "nothing to change"
            self.console.print(f"{mark} {self.phase}: {changed} ({time.monotonic() - self.began:.0f} s)")

    def _refresh(self) -> None:
        if self._progress is not None:
            hosts = f"{len(self.finished)}/{len(self.started)} hosts" if self.started else ""
            self._progress.update(self._bar, description=self.task, phase=self.phase, hosts=hosts)

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if self.verbose and event.get("stdout"):
            self.console.print(event["stdout"], markup=False, highlight=False, soft_wrap=True)
        if kind == "playbook_on_play_start":
            self.phase = data.get("play", "")
            if not self.live and not self.verbose:
                self.console.print(f"» {self.phase}", markup=False, highlight=False)
        elif kind == "playbook_on_task_start":
            self.task = data.get("task", "")
            self.started, self.finished = set(), set()
        elif kind == "runner_on_start":
            self.started.add(data.get("host", ""))
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            host = data.get("host", "")
            self.finished.add(host)
            res = data.get("res") or {}
            if kind == "runner_on_ok":
                self.facts.setdefault(host, {}).update(res.get("ansible_facts") or {})
                # A no_log task's result is censored, its changed flag too; the callback's line says it.
                said = event.get("stdout", "").lstrip()
                changed = res.get("changed") or ("censored" in res and said.startswith("changed"))
                if changed and data.get("task") not in self.changed_tasks:
                    self.changed_tasks.append(data.get("task", ""))
                    if not self.live and not self.verbose:
                        self.console.print(f"  + {data.get('task', '')}", markup=False, highlight=False)
                if data.get("task_action", "").endswith("debug") and res.get("msg"):
                    msg = res["msg"]
                    lines = msg if isinstance(msg, list) else [msg]
                    self.messages.extend(" ".join(str(line).split()) for line in lines)
            elif kind == "runner_on_unreachable" or (kind == "runner_on_failed" and not data.get("ignore_errors")):
                self.failures.append(Failure(data.get("task", ""), host, _message(res)))
        self._refresh()
        return True


def run(
    verb: str,
    extravars: dict[str, Any],
    *,
    cluster: str | None,
    region: str | None = None,
    verbose: bool = False,
    console=None,
    state: str | None = None,
) -> Result:
    """Runs playbooks/<verb>.yml; the run's files go under the state dir of `state` (default: cluster)."""
    import ansible_runner
    from rich.console import Console

    console = console or Console(stderr=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"{time.time() % 1:.3f}"[1:]
    private = paths.state_dir() / (state or cluster or "_") / "runs" / f"{stamp}-{verb}"
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    project = paths.project_dir()

    interrupted = {"count": 0}

    def on_sigint(signum, frame):
        interrupted["count"] += 1
        if interrupted["count"] > 1:
            raise KeyboardInterrupt
        console.print("[yellow]Stopping the playbook (Ctrl-C again to leave at once)…[/yellow]")

    previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    progress = Progress(verbose, console)
    command_file = private / "artifacts" / "awsc" / "command"

    def on_event(event: dict[str, Any]) -> bool:
        # ansible-runner writes the job's environment, credentials included, to `command` just
        # before the first event: clear them out at once, not only at the end (a crash or a second
        # Ctrl-C would leave them there).
        if not progress.began_events:
            progress.began_events = True
            _redact(command_file)
        return progress(event)

    try:
        with progress, only_environment(job_environment(cluster, region)):
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(project),
                playbook=str(paths.playbook(verb)),
                extravars=extravars,
                inventory=str(project / "inventory" / "aws_ec2.yml"),
                ident="awsc",
                quiet=True,
                suppress_env_files=True,
                event_handler=on_event,
                cancel_callback=lambda: interrupted["count"] > 0,
                settings={"suppress_ansible_output": True},
            )
    finally:
        _redact(command_file)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    log = Path(runner.config.artifact_dir) / "stdout"
    status = runner.status
    if interrupted["count"]:
        status = "canceled"
    return Result(
        playbook=f"playbooks/{verb}.yml",
        status=status,
        rc=runner.rc if runner.rc is not None else 1,
        log=log,
        failures=progress.failures,
        facts=progress.facts,
        changed_tasks=progress.changed_tasks,
        messages=progress.messages,
        current_task=progress.task,
    )


SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "SESSION")


def _redact(path: Path) -> None:
    """ansible-runner records the job's environment next to the log: keep credentials out of it."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    env = data.get("env") or {}
    for key in env:
        if any(word in key.upper() for word in SECRET_WORDS):
            env[key] = "********"
    path.write_text(json.dumps(data))


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
