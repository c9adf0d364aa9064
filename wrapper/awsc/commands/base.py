"""What every command shares: the Typer apps, the error and lock decorators, the options, and
the helpers that find a cluster, ask, and run a playbook."""

import functools
import json
import os
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


def rich_console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def load_config():
    from awsc.config import Config

    return Config.load()


def default_region(option: str | None, cfg=None) -> str:
    cfg = cfg or load_config()
    return (
        option
        or cfg.defaults.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def members_of(region: str, name: str):
    """The live nodes of an existing cluster; a cluster without any is an error."""
    from awsc import cloud
    from awsc.config import validate_name

    validate_name(name)
    members = cloud.nodes(region, name)
    if not members:
        raise AwscError(f"No cluster '{name}' in {region}: `awsc ls` lists the clusters there (--region for another).")
    return members


def confirm(question: str, yes: bool) -> bool:
    """--yes says yes; otherwise ask, and read no answer (closed or empty stdin) as no."""
    if yes:
        return True
    try:
        return typer.confirm(question, default=False, err=True)
    except (typer.Abort, EOFError):
        typer.echo("", err=True)
        return False


def run_playbook(verb: str, name: str, extravars: dict[str, Any], region: str, verbose: bool, hints: list[str], **kw):
    """Runs a playbook; on failure prints the failed task, host, message, log and hints, and exits 1."""
    from awsc import runner

    # Every playbook run on the local cloud (up, add-node, ...) gets what differs from AWS.
    extravars = run_vars(extravars)
    result = runner.run(verb, extravars, cluster=name, region=region, verbose=verbose, console=rich_console(True), **kw)
    err = rich_console(True)
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


def place_for(name: str | None, local: bool, region: str | None, autostart: bool = False):
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
    return recorded or cluster_.Place(region=default_region(region), local=False)


def run_vars(extravars: dict[str, Any]) -> dict[str, Any]:
    """The extra-vars a playbook run gets: on the local cloud, with what differs from AWS."""
    if os.environ.get("AWSC_LOCAL") == "1":
        from awsc import local as local_cloud

        return {**extravars, **local_cloud.extravars(os.environ["AWS_ENDPOINT_URL"])}
    return extravars


def resume_hints(name: str) -> list[str]:
    return [f"`awsc up {name}` again resumes; `awsc down {name}` removes what was created."]
