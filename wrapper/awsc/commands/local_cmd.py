"""`awsc local`: the local cloud (an EC2 emulator whose instances are containers here)."""

import typer

from awsc.commands.base import (
    Json,
    command,
    emit_json,
    local_app,
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
        emit_json({"running": address is not None, "endpoint": address, "containers": len(names)})
        return
    typer.echo(f"running at {address}, {len(names)} container(s)" if address else "not running")
