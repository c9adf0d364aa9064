"""The `awsc` command line. Its commands drive the playbooks through ansible-runner."""

import typer

from awsc import __version__

app = typer.Typer(help="Launch a compute cluster on AWS EC2, and take it down again.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"awsc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """awsc: one command for a Slurm or Grid Engine cluster on EC2."""
