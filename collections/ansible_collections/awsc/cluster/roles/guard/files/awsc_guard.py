#!/usr/bin/python3
"""awsc-guard: the master ends its own cluster when it is idle, past its time limit or over its
budget, and needs no cloud credentials to end it.

Every minute `awsc-guard check` reads the limits and prices configure wrote (GUARD_CONFIG), looks
at the queue (squeue, or qstat on Grid Engine) and the logged-in users (who), and decides:
nothing, a warning (to every terminal with wall, and to the journal), or the end. The nodes were
launched with InstanceInitiatedShutdownBehavior set to the cluster's on_limit, so powering them
off terminates (or stops) them: the workers first, then the master. The data volume is never
touched; the reason goes to a file on it, and to the master's tag awsc:ended-by (its instance
profile allows that tag, and boto3 sends it) for `awsc ls`.

    awsc-guard status            what is left: time, money, idle minutes
    sudo awsc-guard postpone 2h  keep an idle cluster up longer (never past the ttl)

The standard library, and boto3 for the tag only: it runs on the node's own python3.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

GUARD_CONFIG = Path("/etc/awsc/guard.json")
GUARD_STATE = Path("/var/lib/awsc/guard-state.json")
# Warnings this many seconds before a shutdown, and at this share of the budget.
WARN_BEFORE = (15 * 60, 5 * 60)
BUDGET_WARN_SHARE = 0.8
REASONS = ("budget", "ttl", "idle")


@dataclass(frozen=True)
class Limits:
    idle_minutes: int = 60  # 0: never for idleness
    ttl_hours: float | None = None
    budget_usd: float | None = None
    on_limit: str = "terminate"


@dataclass
class Memory:
    """What the guard keeps between its checks."""

    idle_since: float | None = None
    postponed_until: float | None = None
    warned: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    action: str  # "none", "warn" or "end"
    reason: str = ""  # one of REASONS
    message: str = ""


def accrued_usd(per_hour: float, launched_at: float, now: float) -> float:
    """Cost so far: every node's hourly price (spot at its maximum) and the volumes', times the
    hours since EC2's launch time. A node clock behind that time accrues nothing, not less."""
    return per_hour * max(0.0, now - launched_at) / 3600


def ttl_deadline(limits: Limits, launched_at: float) -> float | None:
    return launched_at + limits.ttl_hours * 3600 if limits.ttl_hours else None


def postpone(memory: Memory, limits: Limits, launched_at: float, now: float, seconds: float) -> float:
    """Keeps an idle cluster up for `seconds` from now, but never past the ttl; returns the time."""
    until = now + seconds
    deadline = ttl_deadline(limits, launched_at)
    if deadline is not None:
        until = min(until, deadline)
    memory.postponed_until = until
    _forget_idle_warnings(memory)
    return until


def _forget_idle_warnings(memory: Memory) -> None:
    """A new idle period (after a job, or a postpone) warns again."""
    memory.warned = [w for w in memory.warned if not w.startswith("idle")]


def _minutes(seconds: float) -> str:
    """ "1 minute", "45 minutes"; from two hours on, "7 hours 40 minutes"."""
    minutes = max(1, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours" + (f" {minutes} minute{'s' if minutes != 1 else ''}" if minutes else "")


def _deadlines(limits: Limits, per_hour: float, launched_at: float, now: float, memory: Memory) -> dict[str, float]:
    """When each limit ends the cluster, for the limits that are set."""
    found = {}
    if limits.budget_usd is not None and per_hour > 0:
        left = limits.budget_usd - accrued_usd(per_hour, launched_at, now)
        found["budget"] = now + left / per_hour * 3600
    deadline = ttl_deadline(limits, launched_at)
    if deadline is not None:
        found["ttl"] = deadline
    if limits.idle_minutes and memory.idle_since is not None:
        found["idle"] = max(memory.idle_since + limits.idle_minutes * 60, memory.postponed_until or 0)
    return found


def status_lines(limits: Limits, per_hour: float, launched_at: float, now: float, memory: Memory) -> list[str]:
    """What `awsc-guard status` (and so `awsc status`) says: when each limit ends the cluster."""
    deadlines = _deadlines(limits, per_hour, launched_at, now, memory)
    if not deadlines:
        return ["awsc-guard: no limit is running out (the cluster is busy, or none is set)."]
    details = {
        "budget": f"${accrued_usd(per_hour, launched_at, now):.2f} of ${limits.budget_usd or 0:.2f} used",
        "ttl": f"{limits.ttl_hours or 0:g} hours from the launch",
        "idle": f"no job and no login for {_minutes(now - (memory.idle_since or now))}",
    }
    verb = "stops" if limits.on_limit == "stop" else "ends"
    return [
        f"{reason}: in {_minutes(at - now)} ({details[reason]}), then awsc {verb} the cluster"
        for reason, at in deadlines.items()
    ]


def decide(limits: Limits, per_hour: float, launched_at: float, now: float, busy: bool, memory: Memory) -> Decision:
    """One check: updates `memory` and says what to do."""
    if busy:
        memory.idle_since = None
        _forget_idle_warnings(memory)
    elif memory.idle_since is None or memory.idle_since > now:  # idle from now (or the clock went back)
        memory.idle_since = now
    deadlines = _deadlines(limits, per_hour, launched_at, now, memory)
    for reason in REASONS:
        if reason in deadlines and now >= deadlines[reason]:
            return Decision("end", reason, _end_message(reason, limits))
    if limits.budget_usd is not None and "budget80" not in memory.warned:
        spent = accrued_usd(per_hour, launched_at, now)
        if spent >= BUDGET_WARN_SHARE * limits.budget_usd:
            memory.warned.append("budget80")
            return Decision(
                "warn", "budget", f"awsc: this cluster has used ${spent:.2f} of its ${limits.budget_usd:.2f} budget."
            )
    for reason in REASONS:
        if reason not in deadlines:
            continue
        left = deadlines[reason] - now
        crossed = [f"{reason}{lead}" for lead in WARN_BEFORE if left <= lead]
        if crossed and not set(crossed) <= set(memory.warned):
            memory.warned.extend(c for c in crossed if c not in memory.warned)
            return Decision("warn", reason, _warn_message(reason, left, limits))
    return Decision("none")


def _end_message(reason: str, limits: Limits) -> str:
    verb = "stops" if limits.on_limit == "stop" else "ends"
    if reason == "budget":
        why = f"has reached its budget of ${limits.budget_usd:.2f}"
    elif reason == "ttl":
        why = f"has run for its time limit of {limits.ttl_hours:g} hours"
    else:
        why = f"has been idle for {limits.idle_minutes} minutes"
    return f"awsc: this cluster {why}: awsc {verb} it now. /data is kept."


def _warn_message(reason: str, left: float, limits: Limits) -> str:
    verb = "stops" if limits.on_limit == "stop" else "ends"
    why = {"budget": "reaches its budget", "ttl": "reaches its time limit", "idle": "has been idle"}[reason]
    hint = " Run a job, or `sudo awsc-guard postpone 2h`, to keep it." if reason == "idle" else ""
    return f"awsc: this cluster {why}: awsc {verb} it in {_minutes(left)}.{hint}"


# ---- what the node shows ----------------------------------------------------------------------


def jobs_waiting_or_running(squeue: str | None = None, qstat: str | None = None) -> int:
    """Jobs in `squeue -h -t pending,running -o %i` or `qstat -u '*' -s pr` output."""
    count = 0
    if squeue:
        count += sum(1 for line in squeue.splitlines() if line.strip())
    if qstat:
        lines = qstat.splitlines()
        rule = next((i for i, line in enumerate(lines) if re.fullmatch(r"-{10,}", line.strip())), None)
        if rule is not None:
            count += sum(1 for line in lines[rule + 1 :] if line.strip())
    return count


def sessions(who: str) -> int:
    """Logged-in users in `who` output."""
    return sum(1 for line in who.splitlines() if line.strip())


def parse_duration(text: str) -> float:
    """Seconds in "2h", "90m", "1h30m" or a number of minutes."""
    if re.fullmatch(r"[0-9]+", text):
        return int(text) * 60
    match = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?", text)
    if not match or not any(match.groups()):
        raise ValueError(f"'{text}' is not a duration: give it like 2h, 90m or 1h30m")
    hours, minutes = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60


# ---- on the master ----------------------------------------------------------------------------


def _run(*argv: str) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _load() -> tuple[dict, Limits, Memory]:
    config = json.loads(GUARD_CONFIG.read_text())
    limits = Limits(**{k: config[k] for k in Limits.__dataclass_fields__ if k in config})
    memory = Memory(**json.loads(GUARD_STATE.read_text())) if GUARD_STATE.exists() else Memory()
    return config, limits, memory


def _launched_at(config: dict) -> float:
    """EC2's launch time of the master, as configure wrote it; unknown (not on EC2): its boot."""
    if config.get("launched_at") is not None:
        return float(config["launched_at"])
    return time.time() - float(Path("/proc/uptime").read_text().split()[0])


def _save(memory: Memory) -> None:
    GUARD_STATE.parent.mkdir(parents=True, exist_ok=True)
    GUARD_STATE.write_text(json.dumps(asdict(memory)))


def _busy(config: dict) -> bool:
    if config.get("scheduler") == "sge":
        jobs = jobs_waiting_or_running(qstat=_run("qstat", "-u", "*", "-s", "pr"))
    else:
        jobs = jobs_waiting_or_running(squeue=_run("squeue", "-h", "-t", "pending,running", "-o", "%i"))
    return jobs > 0 or sessions(_run("who") or "") > 0


def _tag_master(ec2_config: dict, reason: str) -> str | None:
    """Tags the master awsc:ended-by=REASON with its instance profile (which allows that tag on the
    cluster's instances only), so `awsc ls` says why; returns why it could not."""
    if not ec2_config.get("cluster"):
        return "no cluster name"
    try:
        import boto3  # Debian's python3-boto3

        options = {"region_name": ec2_config["region"]}
        if ec2_config.get("endpoint"):
            # The local cloud: its emulator, which takes any key.
            options.update(
                endpoint_url=ec2_config["endpoint"], aws_access_key_id="local", aws_secret_access_key="local"
            )
        ec2 = boto3.client("ec2", **options)
        filters = [
            {"Name": "tag:awsc:cluster", "Values": [ec2_config["cluster"]]},
            {"Name": "tag:awsc:role", "Values": ["master"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
        found = [
            i["InstanceId"] for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]
        ]
        if found:
            ec2.create_tags(Resources=found, Tags=[{"Key": "awsc:ended-by", "Value": reason}])
        return None if found else "the master was not found"
    except Exception as error:  # no boto3, no rights, no network: the volume's file still says why
        return str(error) or type(error).__name__


def _end(config: dict, reason: str) -> None:
    """Records why (the data volume's file, the master's tag), powers the workers off, then the master."""
    ended = Path(config.get("data_dir", "/data")) / ".awsc" / "ended"
    ended.parent.mkdir(parents=True, exist_ok=True)
    ended.write_text(json.dumps({"reason": reason, "at": time.time()}) + "\n")
    failed = _tag_master(config.get("ec2", {}), reason)
    if failed:
        print(f"awsc-guard: the master is not tagged awsc:ended-by ({failed}); {ended} says why.", flush=True)
    for worker in config.get("workers", []):
        _run("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"root@{worker}", "systemctl", "poweroff")
    subprocess.run(["systemctl", "poweroff"], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="awsc-guard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="one check (the timer runs it every minute)")
    sub.add_parser("status", help="what is left before the guard ends the cluster")
    later = sub.add_parser("postpone", help="keep an idle cluster up longer, e.g. 2h")
    later.add_argument("duration")
    args = parser.parse_args(argv)
    config, limits, memory = _load()
    now = time.time()
    launched_at = _launched_at(config)
    if args.command == "postpone":
        try:
            seconds = parse_duration(args.duration)
        except ValueError as error:
            print(f"awsc-guard: {error}.", file=sys.stderr)
            return 1
        until = postpone(memory, limits, launched_at, now, seconds)
        _save(memory)
        print(f"awsc-guard: the cluster stays up while idle until {time.strftime('%H:%M %Z', time.localtime(until))}.")
        return 0
    if args.command == "status":
        print("\n".join(status_lines(limits, config["per_hour"], launched_at, now, memory)))
        return 0
    decision = decide(limits, config["per_hour"], launched_at, now, _busy(config), memory)
    _save(memory)
    if decision.action != "none":
        print(decision.message, flush=True)  # the journal
        _run("wall", decision.message)
    if decision.action == "end":
        _end(config, decision.reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
