"""`awsc config`: the config file and its cluster templates."""

import json
from typing import Annotated

import typer

from awsc.commands.base import (
    Json,
    command,
    config_app,
    emit_json,
    load_config,
)

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
    cfg = load_config()
    name = template or cfg.default_template
    settings = cfg.resolve(name)
    chain = cfg.chain(name) if name else []
    if as_json:
        emit_json({"template": name, "chain": chain, "settings": settings})
        return
    typer.echo(f"# template {name or '(none)'}" + (f": {' < '.join(chain)}" if len(chain) > 1 else ""))
    typer.echo(f"# from {cfg.path}" if cfg.path.exists() else "# no config file: the playbooks' defaults")
    for key in sorted(settings):
        typer.echo(f"{key} = {json.dumps(settings[key])}")
