"""`awsc volume`: data volumes to reuse, list, delete."""

from typing import Annotated, Any

import typer

from awsc.commands.base import (
    Json,
    Local,
    Region,
    Verbose,
    Yes,
    command,
    confirm,
    emit_json,
    place_for,
    run_playbook,
    volume_app,
)
from awsc.errors import AwscError

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
    where = place_for(None, local, region)
    region = where.region
    month = pricing.storage_month(pricing.load_table(), region, "volume", size)
    typer.echo(f"A {size} GiB gp3 volume costs ${month:.2f}/month until deleted.")
    extravars = {"volume_name": name, "volume_size": size, "region": region, "state": "present"}
    if zone:
        extravars["availability_zone"] = zone
    result = run_playbook("volume", name, extravars, region, verbose, [], state="_volumes")
    volume = result.fact("awsc_volume") or {}
    typer.echo(f"Volume {volume.get('id', '?')} ({name}, {size} GiB) in {volume.get('zone', '?')}.")


@volume_app.command("ls")
@command
def volume_ls(region: Region = None, as_json: Json = False, local: Local = False) -> None:
    """List awsc's volumes and their cost."""
    where = place_for(None, local, region)
    region = where.region
    rows = _volume_rows(region)
    if as_json:
        emit_json(rows)
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
    where = place_for(None, local, region)
    region = where.region
    rows = {row["id"]: row for row in _volume_rows(region)}
    if volume_id not in rows:
        raise AwscError(f"No awsc volume {volume_id} in {region} (`awsc volume ls` lists them).")
    if rows[volume_id]["attached_to"]:
        raise AwscError(
            f"Volume {volume_id} is attached to {', '.join(rows[volume_id]['attached_to'])}: "
            "take its cluster down first."
        )
    if not confirm(f"Delete {volume_id} ({rows[volume_id]['size_gib']} GiB) and its data?", yes):
        raise AwscError("Not deleted: pass --yes to delete it without asking.")
    run_playbook(
        "volume", "_volumes", {"volume_id": volume_id, "region": region, "state": "absent"}, region, verbose, []
    )
    typer.echo(f"Deleted {volume_id}.")
