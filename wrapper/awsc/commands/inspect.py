"""`awsc ls` and `awsc status`: what runs, where, and what it costs."""

from typing import Annotated, Any

import typer

from awsc.commands.base import (
    Json,
    Local,
    Name,
    Region,
    app,
    command,
    emit_json,
    members_of,
    place_for,
    rich_console,
)
from awsc.commands.images import images_bill, images_line
from awsc.errors import AwscError

# ---- ls / status --------------------------------------------------------------------------------


def _summary(name: str, region: str, members, volumes: list[dict], table, now, local: bool) -> dict[str, Any]:
    from datetime import datetime

    from awsc import pricing

    prices = pricing.region_prices(table, region)
    master = next((m for m in members if m.role == "master"), None)
    workers = [m for m in members if m.role == "worker"]
    states = {m.state for m in members}
    running = [m for m in members if m.state == "running"]
    cost: float | None = 0.0
    for m in running:
        price = prices["instance_hour"].get(m.instance_type)
        cost = None if price is None or cost is None else cost + price
    if cost is not None:
        cost += prices["public_ipv4_hour"] * sum(1 for m in running if m.public_ip)
        cost += sum(v["size_gib"] for v in volumes) * prices["gp3_gib_month"] / pricing.HOURS_PER_MONTH
    launched = master.launched if master else min((m.launched for m in members), default=None)
    age = int((now - datetime.fromisoformat(launched)).total_seconds()) if launched else None
    return {
        "name": name,
        "region": region,
        # No instance: its security group and volumes are what is left (cloud.ended_clusters).
        "state": "ended" if not members else states.pop() if len(states) == 1 else "mixed",
        "nodes": len(members),
        "workers": len(workers),
        "running": len(running),
        "master_instance_type": master.instance_type if master else None,
        "worker_instance_types": sorted({w.instance_type for w in workers}),
        "launched": launched,
        "age_seconds": age,
        # A local cluster is free; what it would cost on AWS is beside it.
        "local": local,
        "cost_per_hour": 0.0 if local else None if cost is None else round(cost, 6),
        "aws_cost_per_hour": None if cost is None else round(cost, 6),
    }


def _cost(summary: dict[str, Any], form: str) -> str:
    """A cluster's $/hour in `form`; a local one is free, with its AWS price beside it."""
    aws = "?" if summary["aws_cost_per_hour"] is None else form.format(summary["aws_cost_per_hour"])
    return f"free (AWS {aws})" if summary["local"] else aws


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


@app.command("ls")
@command
def ls_(region: Region = None, as_json: Json = False, local: Local = False) -> None:
    """List clusters: nodes, state, age, $/hour."""
    where = place_for(None, local, region)
    from datetime import UTC, datetime

    from awsc import cloud, pricing

    region = where.region
    ec2 = cloud.client("ec2", region)
    table = pricing.load_table()
    now = datetime.now(UTC)
    clusters = cloud.all_clusters(region, ec2)
    clusters.update({name: [] for name in cloud.ended_clusters(region, set(clusters), ec2)})
    reasons = cloud.ended_by(region, ec2)
    rows = [
        _summary(name, region, members, cloud.volumes(region, name, ec2), table, now, where.local)
        for name, members in sorted(clusters.items())
    ]
    for row in rows:
        # What the guard ended or stopped; a cluster running again was brought back since.
        row["ended_by"] = reasons.get(row["name"]) if row["state"] in ("ended", "stopped") else None
    if as_json:
        emit_json(rows)
        return
    images = images_bill(region)
    if images["count"]:
        typer.echo(images_line(images, where.local))
    if not rows:
        typer.echo(f"No clusters in {region}.")
        return
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    for column in ("CLUSTER", "STATE", "NODES", "MASTER", "WORKERS", "AGE", "$/HOUR"):
        t.add_column(column)
    for row in rows:
        cost = _cost(row, "{:.4f}")
        workers = f"{row['workers']} × {','.join(row['worker_instance_types'])}" if row["workers"] else "0"
        t.add_row(
            row["name"],
            f"{row['state']}: {row['ended_by']}" if row["ended_by"] else row["state"],
            str(row["nodes"]),
            row["master_instance_type"] or "-",
            workers,
            _age(row["age_seconds"]),
            cost,
        )
    rich_console().print(t)
    for row in rows:
        if row["state"] == "ended":
            name = row["name"]
            why = (
                f"its guard ended it ({GUARD_REASONS.get(row['ended_by'], row['ended_by'])})"
                if row["ended_by"]
                else "its guard, or a failed launch, ended them"
            )
            typer.echo(
                f"{name} has no instance left ({why}): `awsc up {name}` "
                f"brings it back with its /data volume, `awsc down {name}` removes what is left."
            )


# The guard's reasons (its master's tag awsc:ended-by), in words.
GUARD_REASONS = {"idle": "idle too long", "ttl": "its time limit", "budget": "its budget"}

# Where the guard's lines begin in the status command's output.
GUARD_MARK = "--- awsc-guard ---"
NODES_MARK = "--- slurm nodes ---"


# Slurm's compact state suffixes for power saving (sinfo %t).
POWER_SUFFIXES = {"~": "powered down", "#": "powering up", "%": "powering down", "!": "powering down soon"}


def slurm_nodes(listed: str) -> list[dict[str, str]]:
    """`sinfo -h -N -o '%N|%t|%E'` -> each node's state and power state: powered down, powering up,
    idle, allocated, or down with its reason."""
    nodes: dict[str, dict[str, str]] = {}
    for line in listed.splitlines():
        if line.count("|") < 2:
            continue
        node, state, reason = (part.strip() for part in line.split("|", 2))
        suffix = state[-1:] if state[-1:] in POWER_SUFFIXES else ""
        base = state.rstrip("~#%!*$@^-")
        if suffix:
            power = POWER_SUFFIXES[suffix]
        elif base in ("down", "drain", "drng", "fail", "failg"):
            power = f"down: {reason}" if reason and reason != "none" else "down"
        elif base in ("alloc", "mix", "comp"):
            power = "allocated"
        elif base == "idle":
            power = "idle"
        else:
            power = base
        if suffix == "~" and reason and reason != "none":
            power += f" ({reason})"
        nodes[node] = {"node": node, "state": state, "power": power, "reason": "" if reason == "none" else reason}
    return list(nodes.values())


@app.command()
@command
def status(
    name: Name,
    region: Region = None,
    as_json: Json = False,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="Do not ask the scheduler over ssh.")] = False,
    local: Local = False,
) -> None:
    """Nodes, addresses and the scheduler's view.

    The scheduler's view is sinfo and squeue on the master over ssh, when it answers.
    """
    where = place_for(name, local, region)
    from datetime import UTC, datetime

    from awsc import cloud, pricing, ssh

    region = where.region
    members = members_of(region, name)
    summary = _summary(
        name, region, members, cloud.volumes(region, name), pricing.load_table(), datetime.now(UTC), where.local
    )
    scheduler: dict[str, Any] = {"reachable": False, "output": None, "error": None, "nodes": []}
    guard = ""
    master = next((m for m in members if m.role == "master"), None)
    if no_scheduler:
        scheduler["error"] = "not asked (--no-scheduler)"
    elif master is None or master.state != "running":
        scheduler["error"] = "the master is not running"
    else:
        try:
            # The scheduler the cluster was launched with, from its master's tag (any machine knows it).
            sge = master.tags.get("awsc:scheduler") == "sge"
            view = "qhost; echo; qstat -f -u '*'" if sge else "sinfo; echo; squeue"
            # Each Slurm node's state, for its power state (elastic workers).
            view += "" if sge else f"; echo {NODES_MARK}; sinfo -h -N -o '%N|%t|%E'"
            # And what the guard has left, when the cluster has one (one ssh for all).
            view += f"; if command -v awsc-guard >/dev/null; then echo {GUARD_MARK}; awsc-guard status; fi"
            argv = ssh.ssh_command(name, members, master, [view], connect_timeout=5, batch=True)
            rc, text = ssh.capture(argv, timeout=20)
        except AwscError as e:
            rc, text = 255, str(e)
        if rc == 0:
            text, _, guard = text.partition(f"{GUARD_MARK}\n")
            text, _, listed = text.partition(f"{NODES_MARK}\n")
            scheduler.update(reachable=True, output=text, nodes=slurm_nodes(listed))
        else:
            scheduler["error"] = f"the master did not answer over ssh (rc {rc}): {' '.join(text.split())}"
    if as_json:
        emit_json(
            {
                "cluster": summary,
                "nodes": [m.as_dict() for m in members],
                "scheduler": scheduler,
                "guard": guard or None,
            }
        )
        return
    from rich.table import Table

    out = rich_console()
    cost = _cost(summary, "${:.4f}/hour")
    out.print(f"Cluster {name} in {region}: {summary['state']}, {summary['nodes']} node(s), {cost}", markup=False)
    t = Table(box=None, header_style="bold")
    for column in ("NODE", "INSTANCE", "TYPE", "STATE", "PUBLIC IP", "PRIVATE IP", "USER"):
        t.add_column(column)
    for m in members:
        t.add_row(m.node, m.instance_id, m.instance_type, m.state, m.public_ip or "-", m.private_ip or "-", m.user)
    out.print(t)
    if scheduler["reachable"]:
        out.print("Scheduler:")
        out.print(scheduler["output"], markup=False)
        if any(n["state"][-1:] in POWER_SUFFIXES for n in scheduler["nodes"]):
            out.print("Slurm's nodes (elastic workers start for jobs and end when idle):")
            for n in scheduler["nodes"]:
                out.print(f"  {n['node']}: {n['power']}", markup=False)
    else:
        out.print(f"Scheduler: unreachable — {scheduler['error']}", markup=False)
    if guard:
        out.print("Guard (time and money left before it ends the cluster):")
        out.print(guard.rstrip(), markup=False)
