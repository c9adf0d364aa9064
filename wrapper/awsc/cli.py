"""The `awsc` command line: arguments in, calls out. Its commands drive the playbooks through ansible-runner.

Thin on purpose: config (awsc.config), runs (awsc.runner), prices (awsc.pricing), AWS queries
(awsc.cloud) and ssh (awsc.ssh) live in their own modules, which are imported inside the
commands so that `awsc --help` does not load ansible-runner, boto3 or rich.
JSON outputs are documented in awsc.schemas.
"""

import functools
import json
import os
import sys
from typing import Annotated, Any

import typer

from awsc import __version__
from awsc.errors import AwscError

app = typer.Typer(
    help="Launch a compute cluster on AWS EC2, and take it down again.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: rendering it with rich would import rich and markdown-it, 0.1 s of `awsc --help`.
    rich_markup_mode=None,
)
config_app = typer.Typer(help="The config file and its cluster templates.", no_args_is_help=True, rich_markup_mode=None)
volume_app = typer.Typer(
    help="Data volumes: create one to reuse, list, delete.", no_args_is_help=True, rich_markup_mode=None
)
local_app = typer.Typer(
    help="The local cloud: an EC2 emulator whose instances are containers here.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
image_app = typer.Typer(
    help="Baked node images: every package installed once, so nodes configure in seconds.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")
app.add_typer(image_app, name="image")
app.add_typer(local_app, name="local")
app.add_typer(volume_app, name="volume")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"awsc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """awsc: one command for a Slurm cluster on EC2 (master + workers, shared /home and /data)."""


def command(function):
    """Every command: an AwscError becomes one line on stderr and exit code 1."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except AwscError as e:
            typer.echo(f"awsc: {e}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def locked(verb: str):
    """A command that changes cluster `name`: it holds the cluster's lock (awsc.lock) while it runs."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            from awsc import config, lock

            with lock.cluster(config.validate_name(kwargs["name"]), verb):
                return function(*args, **kwargs)

        return wrapper

    return decorate


# ---- Shared options ---------------------------------------------------------------------------

Name = Annotated[str, typer.Argument(help="Cluster name: 1-32 lowercase letters, digits, dashes.")]
Region = Annotated[
    str | None, typer.Option("--region", "-r", help="AWS region (default: config, AWS_REGION, us-east-1).")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (see awsc.schemas).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ansible's own output.")]
Local = Annotated[
    bool, typer.Option("--local", help="On the local cloud (`awsc local start`) instead of AWS: free, this machine.")
]
ProvisionOnly = Annotated[
    bool, typer.Option("--provision-only", help="Only create the AWS resources (provision.yml), do not configure.")
]


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _config():
    from awsc.config import Config

    return Config.load()


def _region(option: str | None, cfg=None) -> str:
    cfg = cfg or _config()
    return (
        option
        or cfg.defaults.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def _members(region: str, name: str):
    """The live nodes of an existing cluster; a cluster without any is an error."""
    from awsc import cloud
    from awsc.config import validate_name

    validate_name(name)
    members = cloud.nodes(region, name)
    if not members:
        raise AwscError(f"No cluster '{name}' in {region}: `awsc ls` lists the clusters there (--region for another).")
    return members


def _confirm(question: str, yes: bool) -> bool:
    """--yes says yes; otherwise ask, and read no answer (closed or empty stdin) as no."""
    if yes:
        return True
    try:
        return typer.confirm(question, default=False, err=True)
    except (typer.Abort, EOFError):
        typer.echo("", err=True)
        return False


def _run(verb: str, name: str, extravars: dict[str, Any], region: str, verbose: bool, hints: list[str], **kw):
    """Runs a playbook; on failure prints the failed task, host, message, log and hints, and exits 1."""
    from awsc import runner

    # Every playbook run on the local cloud (up, add-node, ...) gets what differs from AWS.
    extravars = _run_vars(extravars)
    result = runner.run(verb, extravars, cluster=name, region=region, verbose=verbose, console=_console(True), **kw)
    err = _console(True)
    if result.status == "canceled":
        during = f" during “{result.current_task}”" if result.current_task else ""
        err.print(f"[yellow]Interrupted: {result.playbook} was stopped{during}.[/yellow]")
        if result.changed_tasks:
            err.print("These steps had already changed something: " + "; ".join(result.changed_tasks) + ".")
            err.print("Resources may exist and bill: `awsc ls` shows them.")
        else:
            err.print("No step had changed anything yet.")
        for hint in hints:
            err.print(hint)
        err.print(f"Log: {result.log}")
        raise typer.Exit(130)
    if not result.ok:
        # The first failure is the cause; later ones are usually its consequences.
        failure = result.failures[0] if result.failures else None
        if failure:
            err.print(f"[red]✗ {result.playbook} failed[/red] at task “{failure.task}” on {failure.host}:")
            err.print(f"  {failure.message}", markup=False)
            from awsc import ssh as ssh_

            for refused in [f.host for f in result.failures if ssh_.refused(f.message)]:
                err.print(ssh_.refused_hint(name, refused.removeprefix(f"{name}-")), markup=False)
            # Configure goes on without a node that failed; say which ones, each with its cause.
            nodes = {f.host.removeprefix(f"{name}-"): f for f in result.failures if f.host.startswith(f"{name}-")}
            if nodes and "master" not in nodes:
                err.print(
                    f"The other nodes are configured. Failed, and out of the scheduler until `awsc up {name}` "
                    "converges them:",
                    markup=False,
                )
                for node, failed in sorted(nodes.items()):
                    err.print(f"  {node}: “{failed.task}”: {failed.message}", markup=False)
            if len(result.failures) > 1:
                err.print(f"  ({len(result.failures) - 1} more failure(s) after it: see the log)", markup=False)
        else:
            err.print(f"[red]✗ {result.playbook} failed[/red] (status {result.status}, rc {result.rc}).")
        err.print(f"Log: {result.log}")
        for hint in hints:
            err.print(hint)
        raise typer.Exit(1)
    return result


def _where(name: str | None, local: bool, region: str | None, autostart: bool = False):
    """Where the command goes, as an awsc.cluster.Place: --local, --region, else where `up` put
    cluster `name`, else the config's region. The local cloud is switched on when it is there."""
    from awsc import cluster as cluster_

    if local and region:
        raise AwscError("--local runs on the local cloud, which has one region: drop --region.")
    recorded = cluster_.place(name) if name and not local and not region else None
    if local or (recorded and recorded.local):
        from awsc import local as local_cloud

        local_cloud.use(autostart=autostart)
        return cluster_.Place(region=local_cloud.REGION, local=True)
    return recorded or cluster_.Place(region=_region(region), local=False)


def _run_vars(extravars: dict[str, Any]) -> dict[str, Any]:
    """The extra-vars a playbook run gets: on the local cloud, with what differs from AWS."""
    if os.environ.get("AWSC_LOCAL") == "1":
        from awsc import local as local_cloud

        return {**extravars, **local_cloud.EXTRAVARS}
    return extravars


def _image_note(region: str, settings: dict[str, Any], ec2) -> str:
    """Which image a new cluster boots, as provision.yml chooses it, and what that means for configure."""
    from awsc import cloud, config

    flag = " --local" if os.environ.get("AWSC_LOCAL") == "1" else ""
    ready = "nothing to install, configure takes about half a minute"
    if settings.get("ami"):
        return f"Image: AMI {settings['ami']}, as asked."
    images = cloud.images(region, ec2)
    digest = config.image_digest(_run_vars(settings))
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


def _resume_hints(name: str) -> list[str]:
    return [f"`awsc up {name}` again resumes; `awsc down {name}` removes what was created."]


# ---- config -------------------------------------------------------------------------------------


@config_app.command("init")
@command
def config_init(force: Annotated[bool, typer.Option("--force", help="Replace an existing config.")] = False) -> None:
    """Write a commented sample config."""
    from awsc import config

    path = config.init(force=force)
    typer.echo(f"Wrote {path}: edit its templates, then `awsc up NAME -t TEMPLATE`.")


@config_app.command("show")
@command
def config_show(
    template: Annotated[str | None, typer.Argument(help="Template name (default: [defaults] template).")] = None,
    as_json: Json = False,
) -> None:
    """Print a template, resolved.

    Playbook defaults < [defaults] < the extends chain, outermost first.
    """
    cfg = _config()
    name = template or cfg.default_template
    settings = cfg.resolve(name)
    chain = cfg.chain(name) if name else []
    if as_json:
        _emit_json({"template": name, "chain": chain, "settings": settings})
        return
    typer.echo(f"# template {name or '(none)'}" + (f": {' < '.join(chain)}" if len(chain) > 1 else ""))
    typer.echo(f"# from {cfg.path}" if cfg.path.exists() else "# no config file: the playbooks' defaults")
    for key in sorted(settings):
        typer.echo(f"{key} = {json.dumps(settings[key])}")


# ---- up / down ----------------------------------------------------------------------------------


def _print_estimate(est, threshold: float) -> None:
    out = _console()
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
    if est.unknown:
        out.print(f"  No price for {', '.join(est.unknown)} in {est.region}: `awsc price --refresh` looks it up.")
    out.print(f"  Stopped, the volumes still cost ${est.storage_month:.2f}/month.", markup=False)


def _compare(name: str, region: str, members, settings: dict[str, Any], explicit: set[str]) -> None:
    """`up` of an existing cluster must ask for the cluster it is: refuse settings that differ.

    A cluster's "config" is what its instances show: the master's and workers' instance types,
    the AMI and key pair when given explicitly, and the region it lives in (another region is
    another cluster of the same name). The number of workers may differ: that grows or shrinks the
    cluster, except that a template's default count never removes workers by itself.
    """
    master = next((m for m in members if m.role == "master"), None)
    workers = [m for m in members if m.role == "worker"]
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


@local_app.command("start")
@command
def local_start() -> None:
    """Start the local cloud (EC2 emulator + node agent), or find it running."""
    from awsc import local as local_cloud

    address = local_cloud.start()
    typer.echo(f"The local cloud runs at {address}: `awsc up NAME --local` launches a cluster on it.")


@local_app.command("stop")
@command
def local_stop() -> None:
    """Stop the local cloud and remove its containers (volume files stay)."""
    from awsc import local as local_cloud

    removed = local_cloud.stop()
    typer.echo(
        f"The local cloud is stopped ({removed} container(s) removed). "
        "Kept volumes come back at the next `awsc local start`."
    )


@local_app.command("status")
@command
def local_status(as_json: Json = False) -> None:
    """Whether the local cloud runs, where, and its containers."""
    import subprocess

    from awsc import local as local_cloud
    from awsc.agent import LABEL

    address = local_cloud.endpoint()
    names = subprocess.run(
        ["podman", "ps", "--filter", f"label={LABEL}", "--format", "{{.Names}}"], capture_output=True, text=True
    ).stdout.split()
    if as_json:
        _emit_json({"running": address is not None, "endpoint": address, "containers": len(names)})
        return
    typer.echo(f"running at {address}, {len(names)} container(s)" if address else "not running")


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
    where = _where(name, local, region, autostart=True)
    local = where.local
    cfg = _config()
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
                    f"Reusing the /data volume {kept[0]['id']} ({kept[0]['size_gib']} GiB) kept by `awsc down`.",
                    err=as_json,
                )
    est = pricing.estimate(priced, spot_price=spot_now)
    if local:
        # What it stands for on AWS, shown beside; the local cloud itself costs nothing.
        aws, est = est, pricing.Estimate(region="local", taken="free: the local cloud runs on this machine")
    if as_json:
        _emit_json({"estimate": est.as_dict(), **({"aws_estimate": aws.as_dict()} if local else {})})
    elif local:
        on_aws = f"${aws.per_hour:.4f}/hour" + ("" if aws.complete else " and more")
        typer.echo(f"On the local cloud: free, nothing is billed (on AWS in {region}: {on_aws}).")
    else:
        _print_estimate(est, cfg.confirm_above)
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
        if not _confirm(f"Launch {name} ({reason})?", yes):
            raise AwscError(f"Not launched: {reason}; nothing was created. Pass --yes to launch without asking.")

    verb = "provision" if provision_only else "launch"
    # Remembered before the run: the hints of a failed run name the cluster without --local.
    cluster_.remember_place(name, place)
    _run(verb, name, {**settings, "name": name}, region, verbose, _resume_hints(name))
    cluster_.save_settings(name, settings)
    members = cloud.nodes(region, name, ec2)
    master = next((m for m in members if m.role == "master"), None)
    out = _console(stderr=as_json)
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
    where = _where(name, local, region)
    from awsc import cloud, config, pricing

    config.validate_name(name)
    region = where.region
    ec2 = cloud.client("ec2", region)
    if not cloud.exists(region, name, ec2):
        raise AwscError(f"No cluster '{name}' in {region}: nothing to take down (`awsc ls` lists the clusters).")
    members = cloud.nodes(region, name, ec2)
    what = f"{len(members)} instance(s)" + (" and its /data volume" if delete_volume else ", keeping its /data volume")
    if not _confirm(f"Terminate cluster {name} in {region}: {what}?", yes):
        raise AwscError(f"Not terminated: pass --yes to terminate {name} without asking.")
    result = _run(
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
    images = _images_bill(region)
    if as_json:
        _emit_json({"cluster": name, "region": region, "leftovers": items, "per_month": total, "images": images})
        return
    if not any(item["type"] == "volume" for item in items):
        # A kept volume keeps the place: `awsc up NAME` finds its data there again.
        from awsc import cluster as cluster_

        cluster_.forget_place(name)
    out = _console()
    if images["count"]:
        out.print(_images_line(images, where.local), markup=False)
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
    where = _where(name, local, region)
    region = where.region
    _members(region, name)
    _run("stop", name, {"name": name, "region": region}, region, verbose, [f"`awsc stop {name}` again retries."])
    typer.echo(
        f"Cluster {name} is stopped. Its volumes still bill ({_volume_note(region, name)}) until `awsc down {name}`; "
        f"`awsc start {name}` starts it again."
    )


@app.command()
@command
@locked("start")
def start(name: Name, region: Region = None, verbose: Verbose = False, local: Local = False) -> None:
    """Start a stopped cluster (new public IPs)."""
    where = _where(name, local, region)
    from awsc import cloud

    region = where.region
    _members(region, name)
    _run("start", name, {"name": name, "region": region}, region, verbose, [f"`awsc start {name}` again retries."])
    members = cloud.nodes(region, name)
    typer.echo(f"Cluster {name} is running: " + ", ".join(f"{m.node} {m.public_ip or m.private_ip}" for m in members))
    typer.echo(f"Its instances bill again; its volumes billed while it was stopped too ({_volume_note(region, name)}).")


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
        "state": states.pop() if len(states) == 1 else "mixed",
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
    where = _where(None, local, region)
    from datetime import UTC, datetime

    from awsc import cloud, pricing

    region = where.region
    ec2 = cloud.client("ec2", region)
    table = pricing.load_table()
    now = datetime.now(UTC)
    rows = [
        _summary(name, region, members, cloud.volumes(region, name, ec2), table, now, where.local)
        for name, members in cloud.all_clusters(region, ec2).items()
    ]
    if as_json:
        _emit_json(rows)
        return
    images = _images_bill(region)
    if images["count"]:
        typer.echo(_images_line(images, where.local))
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
            row["state"],
            str(row["nodes"]),
            row["master_instance_type"] or "-",
            workers,
            _age(row["age_seconds"]),
            cost,
        )
    _console().print(t)


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
    where = _where(name, local, region)
    from datetime import UTC, datetime

    from awsc import cloud, pricing, ssh

    region = where.region
    members = _members(region, name)
    summary = _summary(
        name, region, members, cloud.volumes(region, name), pricing.load_table(), datetime.now(UTC), where.local
    )
    scheduler: dict[str, Any] = {"reachable": False, "output": None, "error": None}
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
            argv = ssh.ssh_command(name, members, master, [view], connect_timeout=5, batch=True)
            rc, text = ssh.capture(argv, timeout=20)
        except AwscError as e:
            rc, text = 255, str(e)
        if rc == 0:
            scheduler.update(reachable=True, output=text)
        else:
            scheduler["error"] = f"the master did not answer over ssh (rc {rc}): {' '.join(text.split())}"
    if as_json:
        _emit_json({"cluster": summary, "nodes": [m.as_dict() for m in members], "scheduler": scheduler})
        return
    from rich.table import Table

    out = _console()
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
    else:
        out.print(f"Scheduler: unreachable — {scheduler['error']}", markup=False)


# ---- ssh / put / get ----------------------------------------------------------------------------


NODE_PATTERN = r"master|node[0-9]+|i-[0-9a-f]+"


@app.command()
@command
def ssh(
    name: Name,
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NODE] [-- COMMAND...]", help="master (default), node001, ... then a command."),
    ] = None,
    region: Region = None,
    show: Annotated[bool, typer.Option("--print", help="Print the ssh command instead of running it.")] = False,
    local: Local = False,
) -> None:
    """Log in to a node, or run a command there.

    The master by default.
    NODE is master, nodeNNN or an instance id; anything else starts the command.
    """
    where = _where(name, local, region)
    import re
    import shlex

    from awsc import ssh as ssh_

    args = list(args or [])
    node = args.pop(0) if args and re.fullmatch(NODE_PATTERN, args[0]) else None
    if args[:1] == ["--"]:
        args.pop(0)
    region = where.region
    members = _members(region, name)
    target = ssh_.find_node(name, members, node)
    argv = ssh_.ssh_command(name, members, target, args)
    if show:
        typer.echo(shlex.join(argv))
        return
    raise typer.Exit(ssh_.run_checked(name, members, target, argv))


@app.command()
@command
def put(
    name: Name,
    files: Annotated[list[str], typer.Argument(help="Local files, then the remote path.")],
    node: Annotated[str | None, typer.Option("--node", help="master (default), node001, ...")] = None,
    region: Region = None,
    show: Annotated[bool, typer.Option("--print", help="Print the scp command instead of running it.")] = False,
    on_local_cloud: Local = False,
) -> None:
    """Copy local files to a node.

    awsc put NAME LOCAL... REMOTE
    """
    where = _where(name, on_local_cloud, region)
    import shlex

    from awsc import ssh as ssh_

    if len(files) < 2:
        raise AwscError("Usage: awsc put NAME LOCAL... REMOTE")
    region = where.region
    members = _members(region, name)
    target = ssh_.find_node(name, members, node)
    argv = ssh_.scp_command(name, members, target, files[:-1], ssh_.remote(target, files[-1]))
    if show:
        typer.echo(shlex.join(argv))
        return
    raise typer.Exit(ssh_.run_checked(name, members, target, argv))


@app.command()
@command
def get(
    name: Name,
    remote: Annotated[str, typer.Argument(help="Path on the node.")],
    local: Annotated[str, typer.Argument(help="Local path.")] = ".",
    node: Annotated[str | None, typer.Option("--node", help="master (default), node001, ...")] = None,
    region: Region = None,
    show: Annotated[bool, typer.Option("--print", help="Print the scp command instead of running it.")] = False,
    on_local_cloud: Local = False,
) -> None:
    """Copy files from a node.

    awsc get NAME REMOTE [LOCAL]
    """
    where = _where(name, on_local_cloud, region)
    import shlex

    from awsc import ssh as ssh_

    region = where.region
    members = _members(region, name)
    target = ssh_.find_node(name, members, node)
    argv = ssh_.scp_command(name, members, target, [ssh_.remote(target, remote)], local)
    if show:
        typer.echo(shlex.join(argv))
        return
    raise typer.Exit(ssh_.run_checked(name, members, target, argv))


@app.command("ssh-config")
@command
def ssh_config(name: Name, region: Region = None, local: Local = False) -> None:
    """Print an OpenSSH config for the cluster's nodes: ssh NAME-master, rsync, scp, editors.

    awsc ssh-config NAME > ~/.ssh/awsc-NAME.conf, then add `Include awsc-NAME.conf` to ~/.ssh/config.
    """
    where = _where(name, local, region)
    from awsc import ssh as ssh_

    typer.echo(ssh_.config_block(name, _members(where.region, name)), nl=False)


@app.command("trust-node")
@command
def trust_node(
    name: Name,
    node: Annotated[str, typer.Argument(help="master, node001, ...")],
    region: Region = None,
    local: Local = False,
) -> None:
    """Accept the host key a node shows now: only for a node you rebuilt yourself.

    awsc gives every node the cluster's host key at launch and refuses any other.
    """
    where = _where(name, local, region)
    from awsc import ssh as ssh_

    region = where.region
    members = _members(region, name)
    target = ssh_.find_node(name, members, node)
    line = ssh_.trust(name, members, target)
    typer.echo(f"{name}'s {target.node} is now known by the key it shows: {line.split()[-1][:24]}…")


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
    verb = "provision" if provision_only else "launch"
    _run(verb, name, {**settings, "name": name, "remove_nodes": remove or []}, region, verbose, _resume_hints(name))
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
    where = _where(name, local, region)
    from awsc import pricing

    region = where.region
    members = _members(region, name)
    workers = [m for m in members if m.role == "worker"]
    worker_type = workers[0].instance_type if workers else members[0].instance_type
    price = pricing.instance_price(pricing.load_table(), region, worker_type)
    more = "unknown" if price is None else f"${price * count:.4f}/hour"
    typer.echo(f"Adding {count} × {worker_type} to {name}: {more} more, plus IPv4 and root volumes.")
    if price is None and not _confirm(f"Add {count} worker(s) of unknown price?", yes):
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
    where = _where(name, local, region)
    region = where.region
    members = _members(region, name)
    workers = sorted((m for m in members if m.role == "worker"), key=lambda m: m.node)
    if not workers:
        raise AwscError(f"Cluster {name} has no workers to remove.")
    if node not in {m.node for m in workers} | {m.instance_id for m in workers}:
        raise AwscError(f"Cluster {name} has no worker '{node}' (its workers: {', '.join(m.node for m in workers)}).")
    target = next(m for m in workers if node in (m.node, m.instance_id))
    # provision.yml terminates remove_nodes first (fenced by the cluster's tag), then counts.
    _resize(name, region, members, len(workers) - 1, provision_only, verbose, remove=[target.node])


# ---- volumes ------------------------------------------------------------------------------------


def _volume_rows(region: str) -> list[dict[str, Any]]:
    from awsc import cloud, pricing

    table = pricing.load_table()
    rows = cloud.volumes(region)
    for row in rows:
        row["per_month"] = round(pricing.storage_month(table, region, "volume", row["size_gib"]), 2)
    return rows


@volume_app.command("create")
@command
def volume_create(
    name: Annotated[str, typer.Argument(help="Volume name (tag Name and awsc:volume).")],
    size: Annotated[int, typer.Option("--size", "-s", min=1, help="GiB.")] = 10,
    zone: Annotated[str | None, typer.Option("--zone", help="Availability zone (default: the region's first).")] = None,
    region: Region = None,
    verbose: Verbose = False,
    local: Local = False,
) -> None:
    """Create a volume for `up --volume-id`.

    An encrypted gp3 volume, made by playbooks/volume.yml.
    """
    from awsc import config, pricing

    config.validate_name(name)
    where = _where(None, local, region)
    region = where.region
    month = pricing.storage_month(pricing.load_table(), region, "volume", size)
    typer.echo(f"A {size} GiB gp3 volume costs ${month:.2f}/month until deleted.")
    extravars = {"volume_name": name, "volume_size": size, "region": region, "state": "present"}
    if zone:
        extravars["availability_zone"] = zone
    result = _run("volume", name, extravars, region, verbose, [], state="_volumes")
    volume = result.fact("awsc_volume") or {}
    typer.echo(f"Volume {volume.get('id', '?')} ({name}, {size} GiB) in {volume.get('zone', '?')}.")


@volume_app.command("ls")
@command
def volume_ls(region: Region = None, as_json: Json = False, local: Local = False) -> None:
    """List awsc's volumes and their cost."""
    where = _where(None, local, region)
    region = where.region
    rows = _volume_rows(region)
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        typer.echo(f"No awsc volumes in {region}.")
        return
    for row in rows:
        attached = ",".join(row["attached_to"]) or "-"
        typer.echo(
            f"{row['id']}  {row['name'] or '-':<16} {row['cluster'] or '-':<12} {row['role']:<5} "
            f"{row['size_gib']:>5} GiB  {row['zone']}  {row['state']:<9} {attached}  ${row['per_month']:.2f}/month"
        )


@volume_app.command("rm")
@command
def volume_rm(
    volume_id: Annotated[str, typer.Argument(help="vol-...")],
    region: Region = None,
    yes: Yes = False,
    verbose: Verbose = False,
    local: Local = False,
) -> None:
    """Delete a detached volume and its data."""
    where = _where(None, local, region)
    region = where.region
    rows = {row["id"]: row for row in _volume_rows(region)}
    if volume_id not in rows:
        raise AwscError(f"No awsc volume {volume_id} in {region} (`awsc volume ls` lists them).")
    if rows[volume_id]["attached_to"]:
        raise AwscError(
            f"Volume {volume_id} is attached to {', '.join(rows[volume_id]['attached_to'])}: "
            "take its cluster down first."
        )
    if not _confirm(f"Delete {volume_id} ({rows[volume_id]['size_gib']} GiB) and its data?", yes):
        raise AwscError("Not deleted: pass --yes to delete it without asking.")
    _run("volume", "_volumes", {"volume_id": volume_id, "region": region, "state": "absent"}, region, verbose, [])
    typer.echo(f"Deleted {volume_id}.")


# ---- images -------------------------------------------------------------------------------------

ImageName = Annotated[str, typer.Argument(help="Image name: 1-32 lowercase letters, digits, dashes.")]


def _image_rows(region: str) -> list[dict[str, Any]]:
    from awsc import cloud, config, pricing

    table = pricing.load_table()
    digest = config.image_digest(_run_vars({}))
    rows = cloud.images(region)
    for row in rows:
        row["matches"] = row["digest"] == digest
        row["per_month"] = round(pricing.storage_month(table, region, "snapshot", row["snapshot_gib"]), 2)
    return rows


def _images_bill(region: str) -> dict[str, Any]:
    """How many images awsc has baked in the region, and what their snapshots cost (schemas.IMAGES_BILL)."""
    rows = _image_rows(region)
    return {
        "count": len(rows),
        "snapshot_gib": sum(row["snapshot_gib"] for row in rows),
        "per_month": round(sum(row["per_month"] for row in rows), 2),
    }


def _images_line(images: dict[str, Any], local: bool) -> str:
    cost = "free on the local cloud" if local else f"${images['per_month']:.2f}/month"
    flag = " --local" if local else ""
    return (
        f"awsc images: {images['count']}, {images['snapshot_gib']} GiB of snapshots, {cost} "
        f"(`awsc image ls{flag}` lists them, `awsc image rm NAME{flag}` removes one)."
    )


@image_app.command("bake")
@command
def image_bake(
    name: ImageName = "node",
    base_ami: Annotated[str | None, typer.Option("--base-ami", help="AMI to start from (default: Debian 12).")] = None,
    region: Region = None,
    verbose: Verbose = False,
    local: Local = False,
) -> None:
    """Bake an image: every package of the node roles, installed once.

    Runs playbooks/bake.yml: a builder instance, its AMI, then the builder removed. Nothing is
    done when an image of this name already holds these roles.
    """
    from awsc import config, pricing

    config.validate_name(name)
    where = _where(None, local, region, autostart=True)
    region = where.region
    builder, root_gib = (config.playbook_vars()[key] for key in ("builder_instance_type", "root_volume_size"))
    if where.local:
        typer.echo("On the local cloud: free, the image is a podman image here.")
    else:
        table = pricing.load_table()
        hour = pricing.instance_price(table, region, builder)
        typer.echo(
            f"The builder ({builder}) bills "
            + (f"${hour:.4f}/hour" if hour is not None else "an unknown price")
            + " for the bake's minutes; the image's snapshot about "
            + f"${pricing.storage_month(table, region, 'snapshot', root_gib):.2f}/month until `awsc image rm {name}`."
        )
    extravars = {"image_name": name, "region": region, **({"base_ami": base_ami} if base_ami else {})}
    if where.local and not _run_vars({}).get("runtimes_julia"):
        typer.echo("Julia is left out: set AWSC_JULIA_MIRROR to a mirror of julialang.org's releases to have it.")
    hint = f"`awsc image bake {name}{' --local' if where.local else ''}` again retries; a failed bake leaves nothing."
    result = _run("bake", f"image.{name}", extravars, region, verbose, [hint], state="_images")
    image = result.fact("awsc_image") or {}
    local_flag = " --local" if where.local else ""
    typer.echo(f"Image {name}: {image.get('image_id', '?')}.")
    typer.echo(f"`awsc up NAME{local_flag}` launches from it (the newest matching image is the default).")


@image_app.command("ls")
@command
def image_ls(region: Region = None, as_json: Json = False, local: Local = False) -> None:
    """List awsc's images: name, id, date, digest (matching these roles or not), snapshot cost."""
    where = _where(None, local, region)
    rows = _image_rows(where.region)
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        typer.echo(f"No awsc images in {where.region}.")
        return
    for row in rows:
        typer.echo(
            f"{row['name']:<16} {row['id']}  {row['created'][:16]}  {row['digest']} "
            f"{'matches' if row['matches'] else 'other roles':<11} {row['snapshot_gib']:>4} GiB  "
            f"${row['per_month']:.2f}/month"
        )


@image_app.command("rm")
@command
def image_rm(
    image: Annotated[str, typer.Argument(help="Image name (all images of that name) or AMI id.")],
    region: Region = None,
    verbose: Verbose = False,
    local: Local = False,
) -> None:
    """Remove an image: deregister it and delete its snapshots."""
    where = _where(None, local, region)
    rows = [row for row in _image_rows(where.region) if image in (row["name"], row["id"])]
    if not rows:
        flag = " --local" if where.local else ""
        raise AwscError(f"No awsc image '{image}' in {where.region}: `awsc image ls{flag}` lists them.")
    _run("remove_image", "_images", {"image": image, "region": where.region}, where.region, verbose, [])
    gib = sum(row["snapshot_gib"] for row in rows)
    typer.echo(f"Removed {', '.join(row['id'] for row in rows)} and {gib} GiB of snapshots.")


# ---- prices -------------------------------------------------------------------------------------


@app.command()
@command
def price(
    types: Annotated[list[str] | None, typer.Argument(help="Instance types (default: all in the table).")] = None,
    region: Region = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Update the table from the AWS Price List API.")] = False,
    as_json: Json = False,
) -> None:
    """Prices in use; --refresh asks AWS."""
    from awsc import pricing

    region = _region(region)
    if refresh:
        path, found = pricing.refresh(types=types, regions=None)
        typer.echo(f"Refreshed {found} prices into {path}.", err=True)
    table = pricing.load_table()
    prices = pricing.region_prices(table, region)
    instance_hour = {k: v for k, v in prices["instance_hour"].items() if not types or k in types}
    data = {
        "taken": table["taken"],
        "source": table["source"],
        "region": region,
        "instance_hour": instance_hour,
        "gp3_gib_month": prices["gp3_gib_month"],
        "snapshot_gib_month": prices["snapshot_gib_month"],
        "public_ipv4_hour": prices["public_ipv4_hour"],
    }
    if as_json:
        _emit_json(data)
        return
    typer.echo(f"Prices in {region}, USD, taken {table['taken']} ({table['source']})")
    for instance_type, usd in sorted(instance_hour.items(), key=lambda kv: kv[1]):
        typer.echo(f"  {instance_type:<14} {usd:>8.4f}/hour")
    for missing in sorted(set(types or []) - set(instance_hour)):
        typer.echo(f"  {missing:<14} not in the table (`awsc price --refresh {missing}`)")
    typer.echo(
        f"  gp3 {prices['gp3_gib_month']}/GiB-month, snapshots {prices['snapshot_gib_month']}/GiB-month, "
        f"public IPv4 {prices['public_ipv4_hour']}/hour"
    )


@app.command("spot-history")
@command
def spot_history(
    instance_type: Annotated[str, typer.Argument(help="Instance type, e.g. c5.xlarge.")],
    region: Region = None,
    hours: Annotated[int, typer.Option("--hours", min=1, help="How far back.")] = 24,
    as_json: Json = False,
) -> None:
    """Spot prices of an instance type.

    Per zone, newest first (describe_spot_price_history).
    """
    from awsc import cloud, pricing

    region = _region(region)
    rows = cloud.spot_history(region, instance_type, hours=hours)
    if as_json:
        _emit_json(rows)
        return
    on_demand = pricing.instance_price(pricing.load_table(), region, instance_type)
    if not rows:
        typer.echo(f"No spot prices for {instance_type} in {region} in the last {hours} hours.")
        return
    typer.echo(
        f"Spot prices of {instance_type} in {region}" + (f" (on-demand ${on_demand:g}/hour)" if on_demand else "")
    )
    for row in rows[:50]:
        typer.echo(f"  {row['time']}  {row['zone']:<12} ${row['price']:g}/hour")


# ---- doctor -------------------------------------------------------------------------------------


@app.command()
@command
def doctor(
    template: Annotated[str | None, typer.Option("--template", "-t", help="Check for this template.")] = None,
    region: Region = None,
    policy: Annotated[
        bool, typer.Option("--policy", help="Print the IAM policy awsc needs (instead of administrator rights).")
    ] = False,
) -> None:
    """Check credentials, region, keys, AMI, quota; or print the IAM policy awsc needs."""
    from awsc import config as config_
    from awsc import doctor as checks

    if policy:
        typer.echo(json.dumps(config_.user_policy(), indent=2))
        return
    cfg = _config()
    settings = cfg.resolve(template, {"region": region})
    if region is None and "region" not in cfg.explicit(template):
        settings["region"] = _region(None, cfg)
    results = checks.run_all(settings)
    failed = 0
    for check in results:
        mark = "ok  " if check.ok else "FAIL"
        typer.echo(f"{mark} {check.name}: {check.detail}")
        if not check.ok:
            failed += 1
            typer.echo(f"     fix: {check.fix}")
    if failed:
        raise typer.Exit(1)


def run() -> None:  # pragma: no cover - `python -m awsc.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
