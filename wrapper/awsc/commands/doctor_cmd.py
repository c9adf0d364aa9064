"""`awsc doctor`: checks before a launch, and the IAM policy awsc needs."""

import json
from typing import Annotated

import typer

from awsc.commands.base import (
    Region,
    app,
    command,
    default_region,
    load_config,
)

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
    cfg = load_config()
    settings = cfg.resolve(template, {"region": region})
    if region is None and "region" not in cfg.explicit(template):
        settings["region"] = default_region(None, cfg)
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
