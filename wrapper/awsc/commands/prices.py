"""`awsc price` and `awsc spot-history`."""

from typing import Annotated

import typer

from awsc.commands.base import (
    Json,
    Region,
    app,
    command,
    default_region,
    emit_json,
)

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

    region = default_region(region)
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
        emit_json(data)
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

    region = default_region(region)
    rows = cloud.spot_history(region, instance_type, hours=hours)
    if as_json:
        emit_json(rows)
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
