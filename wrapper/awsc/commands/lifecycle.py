"""A cluster's life: `awsc up`, `down`, `stop`, `start`, `add-node`, `remove-node`."""

import os
from typing import Annotated, Any

import typer

from awsc.commands.base import (
    Json,
    Local,
    Name,
    ProvisionOnly,
    Region,
    Verbose,
    Yes,
    app,
    command,
    confirm,
    emit_json,
    load_config,
    locked,
    members_of,
    place_for,
    resume_hints,
    rich_console,
    run_playbook,
    run_vars,
)
from awsc.commands.images import images_bill, images_line
from awsc.errors import AwscError

# ---- up / down ----------------------------------------------------------------------------------


def _print_estimate(est, threshold: float) -> None:
    out = rich_console()
    out.print(f"Estimated cost in {est.region} (prices of {est.taken}):")
    for line in est.lines:
        per_hour = "unknown" if line.per_hour is None else f"${line.per_hour:.4f}/h"
        unit = "" if line.unit is None or line.what == "EBS volumes" else f" × ${line.unit:g}"
        note = f"  ({line.note})" if line.note else ""
        out.print(f"  {line.count:>3} {line.what}{unit}: {per_hour}{note}", markup=False)
    total = f"${est.per_hour:.4f}/hour (about ${est.per_month:.2f}/month)"
    out.print(f"  Total: {total}" + ("" if est.complete else " + the unknown prices"), markup=False)
    if est.spot_max_hour is not None:
        out.print(f"  Spot workers bill at most ${est.spot_max_hour:.4f}/hour together.", markup=False)
    if est.elastic_workers:
        out.print(
            f"  Elastic: Slurm starts up to {est.elastic_workers} more worker(s) for waiting jobs and ends them when "
            f"idle: from ${est.per_hour:.4f} to ${est.most_per_hour:.4f}/hour.",
            markup=False,
        )
    if est.unknown:
        out.print(f"  No price for {', '.join(est.unknown)} in {est.region}: `awsc price --refresh` looks it up.")
    out.print(f"  Stopped, the volumes still cost ${est.storage_month:.2f}/month.", markup=False)


def _price_for_the_guard(settings: dict[str, Any], region: str, spot_price: float | None = None) -> None:
    """The guard's budget counts with the most the cluster can cost per hour (on the local cloud:
    what it stands for on AWS), its /data volume included whether new or kept: the same figure for
    every run of the same settings. Unknown prices leave the setting as it was."""
    from awsc import pricing

    counted = {key: value for key, value in settings.items() if key != "volume_id"}
    est = pricing.estimate({**counted, "region": region}, spot_price=spot_price)
    if est.complete:
        settings["cost_per_hour"] = f"{est.most_per_hour:.6f}"


def _print_worst_case(name: str, est, settings: dict[str, Any]) -> None:
    """What a cluster left running costs before its guard ends it."""
    minutes = int(settings["idle_shutdown"])
    if minutes:
        typer.echo(
            f"  Forgotten: at most ${est.most_per_hour * minutes / 60:.2f} after its last job or login "
            f"(the guard ends it after {minutes} idle minutes)."
        )
    else:
        typer.echo(f"  Forgotten: it bills until `awsc down {name}` (idle_shutdown is 0: no idle shutdown).")


def _print_free_tier(est, settings: dict[str, Any], ec2) -> None:
    """What the account's free tier pays of this cluster (awsc.billing): a line or two."""
    from awsc import billing

    plan, error = billing.plan_state(billing.free_tier_client())
    types = [settings["master_instance_type"]] + [settings["worker_instance_type"]] * int(settings["workers"])
    free = billing.eligible(ec2, types) if plan and plan.get("accountPlanType") != "FREE" else {}
    for line in billing.lines(plan, error, est.per_hour, types, free):
        typer.echo(line)


def _static_workers(members) -> list:
    """The always-on workers: elastic ones come and go with the jobs (Slurm starts and ends them)."""
    return [m for m in members if m.role == "worker" and m.tags.get("awsc:elastic") != "true"]


def _room_for_the_workers(settings: dict[str, Any], explicit: set[str], members) -> None:
    """max_workers counts the always-on workers too. Unless asked for now, a cluster without elastic
    workers (max_workers its worker count) keeps none when it grows or shrinks, and one with them
    keeps its maximum, raised when the always-on workers pass it."""
    recorded = str(settings.get("max_workers") or "")
    if "max_workers" in explicit or not recorded.isdigit():
        return
    wanted = int(settings["workers"])
    settings["max_workers"] = wanted if int(recorded) <= len(_static_workers(members)) else max(int(recorded), wanted)


def _compare(name: str, region: str, members, settings: dict[str, Any], explicit: set[str]) -> None:
    """`up` of an existing cluster must ask for the cluster it is: refuse settings that differ.

    A cluster's "config" is what its instances show: the master's and workers' instance types,
    the AMI and key pair when given explicitly, and the region it lives in (another region is
    another cluster of the same name). The number of workers may differ: that grows or shrinks the
    cluster, except that a template's default count never removes workers by itself.
    """
    master = next((m for m in members if m.role == "master"), None)
    workers = _static_workers(members)
    differences = []
    if master and master.instance_type != settings["master_instance_type"]:
        differences.append(f"master_instance_type {master.instance_type} (asked: {settings['master_instance_type']})")
    if workers and workers[0].instance_type != settings["worker_instance_type"]:
        differences.append(
            f"worker_instance_type {workers[0].instance_type} (asked: {settings['worker_instance_type']})"
        )
    if master and "ami" in explicit and settings["ami"] and master.image_id != settings["ami"]:
        differences.append(f"ami {master.image_id} (asked: {settings['ami']})")
    if master and "key_name" in explicit and settings["key_name"] and master.key_name != settings["key_name"]:
        differences.append(f"key_name {master.key_name} (asked: {settings['key_name']})")
    launched_with = master.tags.get("awsc:scheduler") if master else None
    if launched_with and launched_with != settings["scheduler"]:
        differences.append(f"scheduler {launched_with} (asked: {settings['scheduler']})")
    if differences:
        raise AwscError(
            f"Cluster {name} exists in {region} with {'; '.join(differences)}: use its settings to resume, "
            f"or `awsc down {name}` first."
        )
    if len(workers) > int(settings["workers"]) and "workers" not in explicit:
        raise AwscError(
            f"Cluster {name} has {len(workers)} workers, the template {settings['workers']}: pass -n {len(workers)} "
            f"to keep them, or -n {settings['workers']} (or `awsc remove-node`) to shrink it."
        )


def _image_note(region: str, settings: dict[str, Any], ec2) -> str:
    """Which image a new cluster boots, as provision.yml chooses it, and what that means for configure."""
    from awsc import cloud, config

    flag = " --local" if os.environ.get("AWSC_LOCAL") == "1" else ""
    ready = "nothing to install, configure takes about half a minute"
    if settings.get("ami"):
        return f"Image: AMI {settings['ami']}, as asked."
    images = cloud.images(region, ec2)
    digest = config.image_digest(run_vars(settings))
    wanted = settings.get("image")
    if wanted:
        named = [i for i in images if wanted in (i["name"], i["id"])]
        if not named:
            raise AwscError(
                f"No awsc image '{wanted}' in {region}: `awsc image ls{flag}` lists them, "
                f"`awsc image bake {wanted}{flag}` makes it."
            )
        found = named[-1]
        if found["digest"] != digest:
            return f"Image: {found['name']} ({found['id']}), baked from other roles: configure installs the difference."
        return f"Image: {found['name']} ({found['id']}): {ready}."
    matching = [i for i in images if i["digest"] == digest and i["state"] == "available"]
    if matching:
        return f"Image: {matching[-1]['name']} ({matching[-1]['id']}): {ready}."
    return (
        "Image: the stock Debian 12: configure installs every package, minutes per node "
        f"(`awsc image bake{flag}` once makes it seconds)."
    )


@app.command()
@command
@locked("up")
def up(
    name: Name,
    template: Annotated[str | None, typer.Option("--template", "-t", help="Template of the config.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-n", help="Number of workers.")] = None,
    worker_type: Annotated[str | None, typer.Option("--worker-type", help="Workers' instance type.")] = None,
    master_type: Annotated[str | None, typer.Option("--master-type", help="Master's instance type.")] = None,
    ami: Annotated[str | None, typer.Option("--ami", help="AMI id (overrides --image).")] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Baked image, by name or id (default: the newest matching one).")
    ] = None,
    spot_max_price: Annotated[
        str | None, typer.Option("--spot-max-price", help="Spot workers at this max USD/hour.")
    ] = None,
    volume_size: Annotated[int | None, typer.Option("--volume-size", help="GiB of a new /data volume.")] = None,
    volume_id: Annotated[str | None, typer.Option("--volume-id", help="Reuse this volume as /data.")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="slurm | sge.")] = None,
    ssh_cidr: Annotated[str | None, typer.Option("--ssh-cidr", help="Who may SSH in (default: your IP/32).")] = None,
    ssh_from_anywhere: Annotated[
        bool | None, typer.Option("--ssh-from-anywhere", help="Accept a /0 --ssh-cidr: SSH open to the internet.")
    ] = None,
    key_name: Annotated[str | None, typer.Option("--key-name", help="An EC2 key pair of yours.")] = None,
    idle_shutdown: Annotated[
        int | None,
        typer.Option("--idle-shutdown", help="End it after this many minutes with no job or login (0: never)."),
    ] = None,
    ttl: Annotated[str | None, typer.Option("--ttl", help="End it this many hours after launch.")] = None,
    budget: Annotated[str | None, typer.Option("--budget", help="End it once it has cost this many USD.")] = None,
    on_limit: Annotated[
        str | None, typer.Option("--on-limit", help="terminate | stop: what ending it does to the instances.")
    ] = None,
    max_workers: Annotated[
        int | None,
        typer.Option("--max-workers", help="Workers in all: Slurm starts those above -n for jobs (elastic)."),
    ] = None,
    idle_minutes: Annotated[
        int | None, typer.Option("--idle-minutes", help="Minutes idle before an elastic worker ends.")
    ] = None,
    resume_timeout: Annotated[
        int | None, typer.Option("--resume-timeout", help="Seconds an elastic worker has to start and join.")
    ] = None,
    region: Region = None,
    yes: Yes = False,
    verbose: Verbose = False,
    provision_only: ProvisionOnly = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the estimate and stop.")] = False,
    as_json: Json = False,
    local: Local = False,
) -> None:
    """Launch a cluster, the cost estimate first.

    Runs playbooks/launch.yml (provision, then configure); --provision-only runs provision.yml.
    """
    from awsc import cloud, config, pricing
    from awsc import cluster as cluster_

    config.validate_name(name)
    if volume_size is not None and volume_id is not None:
        raise AwscError("Pass --volume-size (a new volume) or --volume-id (an existing one), not both.")
    chosen = local or region or cluster_.place(name)
    where = place_for(name, local, region, autostart=True)
    local = where.local
    cfg = load_config()
    overrides = {
        "workers": workers,
        "worker_instance_type": worker_type,
        "master_instance_type": master_type,
        "ami": ami,
        "image": image,
        "spot_max_price": spot_max_price,
        "volume_size": volume_size,
        "volume_id": volume_id,
        "scheduler": scheduler,
        "ssh_cidr": ssh_cidr,
        "ssh_from_anywhere": ssh_from_anywhere,
        "key_name": key_name,
        "idle_shutdown": idle_shutdown,
        "ttl": ttl,
        "budget": budget,
        "on_limit": on_limit,
        "max_workers": max_workers,
        "idle_minutes": idle_minutes,
        "resume_timeout": resume_timeout,
        # --local, --region or where the cluster already is wins over the config's region.
        "region": where.region if chosen else None,
    }
    settings = cfg.resolve(template, overrides)
    explicit = cfg.explicit(template, overrides)
    if "region" not in explicit:
        settings["region"] = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or settings["region"]
    config.check({**settings, "name": name})
    region = settings["region"]
    place = cluster_.Place(region=region, local=local)
    ec2 = cloud.client("ec2", region)
    for key in ("master_instance_type", "worker_instance_type"):
        if not cloud.instance_type_exists(region, settings[key], ec2):
            raise AwscError(f"Instance type '{settings[key]}' does not exist in {region}: check --{key[:6]}-type.")
    members = cloud.nodes(region, name, ec2)
    if members:
        # What the cluster was launched with (its master's tags) wins over defaults, from any machine.
        master = next((m for m in members if m.role == "master"), None)
        kept = config.settings_from_tags(master.tags) if master else {}
        settings.update({key: value for key, value in kept.items() if key not in explicit})
        _room_for_the_workers(settings, explicit, members)
        _compare(name, region, members, settings, explicit)

    spot_now = None
    if settings.get("spot_max_price"):
        spot_now = cloud.spot_price(region, settings["worker_instance_type"], ec2=ec2)
    priced = settings
    if not settings.get("volume_id"):
        # provision.yml adopts the /data volume a previous `down` kept (found by its name NAME-data).
        kept = [v for v in cloud.volumes(region, name, ec2) if v["role"] == "data" and v["name"] == f"{name}-data"]
        if kept:
            priced = dict(settings, volume_id=kept[0]["id"])
            if not kept[0]["attached_to"]:
                typer.echo(
                    f"Reusing the /data volume {kept[0]['id']} ({kept[0]['size_gib']} GiB), "
                    "kept when the cluster went down.",
                    err=as_json,
                )
    est = pricing.estimate(priced, spot_price=spot_now)
    _price_for_the_guard(settings, region, spot_now)
    if local:
        # What it stands for on AWS, shown beside; the local cloud itself costs nothing.
        aws, est = est, pricing.Estimate(region="local", taken="free: the local cloud runs on this machine")
    if as_json:
        emit_json({"estimate": est.as_dict(), **({"aws_estimate": aws.as_dict()} if local else {})})
    elif local:
        on_aws = f"${aws.per_hour:.4f}/hour" + ("" if aws.complete else " and more")
        typer.echo(f"On the local cloud: free, nothing is billed (on AWS in {region}: {on_aws}).")
    else:
        _print_estimate(est, cfg.confirm_above)
        _print_worst_case(name, est, settings)
        _print_free_tier(est, settings, ec2)
    if not members:
        typer.echo(_image_note(region, settings, ec2), err=as_json)
    if dry_run:
        return
    if members:
        typer.echo(f"Cluster {name} exists ({len(members)} nodes): resuming it with these settings.", err=True)
    if not est.complete or est.per_hour > cfg.confirm_above:
        reason = (
            "its price is not in the table"
            if not est.complete
            else f"above confirm_above = ${cfg.confirm_above:g}/hour"
        )
        if not confirm(f"Launch {name} ({reason})?", yes):
            raise AwscError(f"Not launched: {reason}; nothing was created. Pass --yes to launch without asking.")

    verb = "provision" if provision_only else "launch"
    # Remembered before the run: the hints of a failed run name the cluster without --local.
    cluster_.remember_place(name, place)
    run_playbook(verb, name, {**settings, "name": name}, region, verbose, resume_hints(name))
    cluster_.save_settings(name, settings)
    members = cloud.nodes(region, name, ec2)
    master = next((m for m in members if m.role == "master"), None)
    out = rich_console(stderr=as_json)
    out.print(
        f"Cluster {name} is up in {'the local cloud' if local else region}: master "
        f"{(master.private_ip if local else master.public_ip) if master else '?'}, "
        f"{len(members) - 1} worker(s).",
        markup=False,
    )
    if provision_only:
        out.print(f"Provisioned only: `awsc up {name}` without --provision-only configures the nodes.", markup=False)
    out.print(f"`awsc ssh {name}` logs in; `awsc down {name}` takes it away.", markup=False)


@app.command()
@command
@locked("down")
def down(
    name: Name,
    delete_volume: Annotated[bool, typer.Option("--delete-volume", help="Also delete the /data volume.")] = False,
    region: Region = None,
    yes: Yes = False,
    verbose: Verbose = False,
    as_json: Json = False,
    local: Local = False,
) -> None:
    """Terminate a cluster; report what still bills.

    Runs playbooks/terminate.yml, then lists what still carries the cluster's tag and its monthly cost.
    """
    where = place_for(name, local, region)
    from awsc import cloud, config, pricing

    config.validate_name(name)
    region = where.region
    ec2 = cloud.client("ec2", region)
    if not cloud.exists(region, name, ec2):
        raise AwscError(f"No cluster '{name}' in {region}: nothing to take down (`awsc ls` lists the clusters).")
    members = cloud.nodes(region, name, ec2)
    what = f"{len(members)} instance(s)" + (" and its /data volume" if delete_volume else ", keeping its /data volume")
    if not confirm(f"Terminate cluster {name} in {region}: {what}?", yes):
        raise AwscError(f"Not terminated: pass --yes to terminate {name} without asking.")
    result = run_playbook(
        "terminate",
        name,
        {"name": name, "region": region, "delete_volume": delete_volume},
        region,
        verbose,
        [f"`awsc down {name}` again retries what is left."],
    )
    left = result.fact("awsc_leftovers")
    if left is None:
        left = cloud.leftovers(region, name, ec2)
    table = pricing.load_table()
    items = [
        dict(
            item,
            size_gib=int(item["size_gib"]),
            per_month=round(pricing.storage_month(table, region, item["type"], int(item["size_gib"])), 2),
        )
        for item in left
    ]
    total = round(sum(item["per_month"] for item in items), 2)
    images = images_bill(region)
    if as_json:
        emit_json({"cluster": name, "region": region, "leftovers": items, "per_month": total, "images": images})
        return
    if not any(item["type"] == "volume" for item in items):
        # A kept volume keeps the place: `awsc up NAME` finds its data there again.
        from awsc import cluster as cluster_

        cluster_.forget_place(name)
    out = rich_console()
    if images["count"]:
        out.print(images_line(images, where.local), markup=False)
    if not items:
        out.print(f"Cluster {name} is gone: nothing is left that bills.")
        return
    out.print(f"Cluster {name} is terminated. Still billing (${total:.2f}/month):", markup=False)
    for item in items:
        out.print(
            f"  {item['type']} {item['id']}: {item['size_gib']} GiB, ${item['per_month']:.2f}/month", markup=False
        )
    if any(item["type"] == "volume" for item in items):
        volume = next(item["id"] for item in items if item["type"] == "volume")
        out.print(
            f"Reuse it with `awsc up {name} --volume-id {volume}`, or delete it: `awsc volume rm {volume}`.",
            markup=False,
        )


# ---- stop / start -------------------------------------------------------------------------------


def _volume_note(region: str, name: str) -> str:
    from awsc import cloud, pricing

    found = cloud.volumes(region, name)
    gib = sum(v["size_gib"] for v in found)
    month = pricing.storage_month(pricing.load_table(), region, "volume", gib)
    return f"{len(found)} EBS volume(s), {gib} GiB: ${month:.2f}/month"


@app.command()
@command
@locked("stop")
def stop(name: Name, region: Region = None, verbose: Verbose = False, local: Local = False) -> None:
    """Stop the instances; the volumes still bill."""
    where = place_for(name, local, region)
    region = where.region
    members_of(region, name)
    run_playbook(
        "stop", name, {"name": name, "region": region}, region, verbose, [f"`awsc stop {name}` again retries."]
    )
    typer.echo(
        f"Cluster {name} is stopped. Its volumes still bill ({_volume_note(region, name)}) until `awsc down {name}`; "
        f"`awsc start {name}` starts it again."
    )


@app.command()
@command
@locked("start")
def start(name: Name, region: Region = None, verbose: Verbose = False, local: Local = False) -> None:
    """Start a stopped cluster (new public IPs)."""
    where = place_for(name, local, region)
    from awsc import cloud

    region = where.region
    members_of(region, name)
    run_playbook(
        "start", name, {"name": name, "region": region}, region, verbose, [f"`awsc start {name}` again retries."]
    )
    members = cloud.nodes(region, name)
    typer.echo(f"Cluster {name} is running: " + ", ".join(f"{m.node} {m.public_ip or m.private_ip}" for m in members))
    typer.echo(f"Its instances bill again; its volumes billed while it was stopped too ({_volume_note(region, name)}).")


# ---- add-node / remove-node ---------------------------------------------------------------------


def _resize(
    name: str, region: str, members, workers: int, provision_only: bool, verbose: bool, remove: list[str] | None = None
) -> None:
    from awsc import cloud, config
    from awsc import cluster as cluster_

    settings = config.playbook_defaults()
    settings.update(cluster_.saved_settings(name))
    settings.update(cloud.settings_of(region, name, members))
    settings["workers"] = workers
    _room_for_the_workers(settings, set(), members)
    _price_for_the_guard(settings, region)
    verb = "provision" if provision_only else "launch"
    run_playbook(
        verb, name, {**settings, "name": name, "remove_nodes": remove or []}, region, verbose, resume_hints(name)
    )
    cluster_.save_settings(name, settings)
    after = cloud.nodes(region, name)
    typer.echo(
        f"Cluster {name} has {sum(m.role == 'worker' for m in after)} worker(s): "
        + ", ".join(m.node for m in after if m.role == "worker")
    )


@app.command("add-node")
@command
@locked("add-node")
def add_node(
    name: Name,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many workers to add.")] = 1,
    region: Region = None,
    yes: Yes = False,
    verbose: Verbose = False,
    provision_only: ProvisionOnly = False,
    local: Local = False,
) -> None:
    """Add workers and configure them.

    Runs launch.yml with more workers (--provision-only: provision.yml).
    """
    where = place_for(name, local, region)
    from awsc import pricing

    region = where.region
    members = members_of(region, name)
    workers = _static_workers(members)
    worker_type = workers[0].instance_type if workers else members[0].instance_type
    price = pricing.instance_price(pricing.load_table(), region, worker_type)
    more = "unknown" if price is None else f"${price * count:.4f}/hour"
    typer.echo(f"Adding {count} × {worker_type} to {name}: {more} more, plus IPv4 and root volumes.")
    if price is None and not confirm(f"Add {count} worker(s) of unknown price?", yes):
        raise AwscError("Not added: pass --yes to add them without asking.")
    _resize(name, region, members, len(workers) + count, provision_only, verbose)


@app.command("remove-node")
@command
@locked("remove-node")
def remove_node(
    name: Name,
    node: Annotated[str, typer.Argument(help="The worker to remove: node001, ... or its instance id.")],
    region: Region = None,
    verbose: Verbose = False,
    provision_only: ProvisionOnly = False,
    local: Local = False,
) -> None:
    """Remove a worker and configure the rest.

    Runs launch.yml with one worker fewer and that one in remove_nodes (--provision-only:
    provision.yml); its number stays free until the cluster grows again.
    """
    where = place_for(name, local, region)
    region = where.region
    members = members_of(region, name)
    workers = sorted(_static_workers(members), key=lambda m: m.node)
    if not workers:
        raise AwscError(f"Cluster {name} has no workers to remove.")
    if node not in {m.node for m in workers} | {m.instance_id for m in workers}:
        raise AwscError(f"Cluster {name} has no worker '{node}' (its workers: {', '.join(m.node for m in workers)}).")
    target = next(m for m in workers if node in (m.node, m.instance_id))
    # provision.yml terminates remove_nodes first (fenced by the cluster's tag), then counts.
    _resize(name, region, members, len(workers) - 1, provision_only, verbose, remove=[target.node])
