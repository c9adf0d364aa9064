"""`awsc image`: baked node images."""

from typing import Annotated, Any

import typer

from awsc.commands.base import (
    Json,
    Local,
    Region,
    Verbose,
    command,
    emit_json,
    image_app,
    place_for,
    run_playbook,
    run_vars,
)
from awsc.errors import AwscError

# ---- images -------------------------------------------------------------------------------------

ImageName = Annotated[str, typer.Argument(help="Image name: 1-32 lowercase letters, digits, dashes.")]


def _image_rows(region: str) -> list[dict[str, Any]]:
    from awsc import cloud, config, pricing

    table = pricing.load_table()
    digest = config.image_digest(run_vars({}))
    rows = cloud.images(region)
    for row in rows:
        row["matches"] = row["digest"] == digest
        row["per_month"] = round(pricing.storage_month(table, region, "snapshot", row["snapshot_gib"]), 2)
    return rows


def images_bill(region: str) -> dict[str, Any]:
    """How many images awsc has baked in the region, and what their snapshots cost (schemas.IMAGES_BILL)."""
    rows = _image_rows(region)
    return {
        "count": len(rows),
        "snapshot_gib": sum(row["snapshot_gib"] for row in rows),
        "per_month": round(sum(row["per_month"] for row in rows), 2),
    }


def images_line(images: dict[str, Any], local: bool) -> str:
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
    where = place_for(None, local, region, autostart=True)
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
    if where.local and not run_vars({}).get("runtimes_julia"):
        typer.echo("Julia is left out: set AWSC_JULIA_MIRROR to a mirror of julialang.org's releases to have it.")
    hint = f"`awsc image bake {name}{' --local' if where.local else ''}` again retries; a failed bake leaves nothing."
    result = run_playbook("bake", f"image.{name}", extravars, region, verbose, [hint], state="_images")
    image = result.fact("awsc_image") or {}
    local_flag = " --local" if where.local else ""
    typer.echo(f"Image {name}: {image.get('image_id', '?')}.")
    typer.echo(f"`awsc up NAME{local_flag}` launches from it (the newest matching image is the default).")


@image_app.command("ls")
@command
def image_ls(region: Region = None, as_json: Json = False, local: Local = False) -> None:
    """List awsc's images: name, id, date, digest (matching these roles or not), snapshot cost."""
    where = place_for(None, local, region)
    rows = _image_rows(where.region)
    if as_json:
        emit_json(rows)
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
    where = place_for(None, local, region)
    rows = [row for row in _image_rows(where.region) if image in (row["name"], row["id"])]
    if not rows:
        flag = " --local" if where.local else ""
        raise AwscError(f"No awsc image '{image}' in {where.region}: `awsc image ls{flag}` lists them.")
    run_playbook("remove_image", "_images", {"image": image, "region": where.region}, where.region, verbose, [])
    gib = sum(row["snapshot_gib"] for row in rows)
    typer.echo(f"Removed {', '.join(row['id'] for row in rows)} and {gib} GiB of snapshots.")
