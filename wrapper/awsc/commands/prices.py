"""`awsc price`, `awsc spot-history` and `awsc bill`."""

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
from awsc.errors import AwscError

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


# ---- the bill -----------------------------------------------------------------------------------


@app.command()
@command
def bill(
    month: Annotated[str | None, typer.Option("--month", help="A month as YYYY-MM (default: this one).")] = None,
    as_json: Json = False,
) -> None:
    """The month's cost so far: awsc's clusters and the whole account, and the free tier.

    From Cost Explorer, which bills $0.01 for each run; costs show up within a day.
    """
    import re
    from datetime import UTC, datetime

    from awsc import billing, cloud

    if month is not None and not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
        raise AwscError(f"Invalid --month {month!r}: pass a month as YYYY-MM, e.g. --month 2026-11.")
    try:
        start, end = billing.month(month, datetime.now(UTC).date())
    except ValueError as error:
        raise AwscError(f"Invalid --month {month}: {error}; pass this month or an earlier one.") from error
    found = cloud.call(billing.bill, cloud.client("ce", "us-east-1"), start, end)
    # When the Free Tier API does not answer, one line says so.
    free_tier = billing.free_tier_client()
    plan, error = billing.plan_state(free_tier)
    usage, error = billing.free_tier_usage(free_tier) if plan else ([], error)
    if as_json:
        emit_json({"bill": found.as_dict(), "free_tier": billing.free_tier_dict(plan, usage, error)})
        return
    estimated = ", estimated" if found.estimated else ""
    typer.echo(f"Cost from {start} to {end} (Cost Explorer{estimated}): ${found.total_usd:.2f} for the account")
    if found.clusters:
        typer.echo(f"  awsc clusters: ${sum(found.clusters.values()):.2f}")
        for name, usd in sorted(found.clusters.items()):
            typer.echo(f"    {name:<20} ${usd:.2f}")
        typer.echo(f"  everything else: ${found.untagged_usd:.2f}")
    else:
        typer.echo(
            f"  No cost carries the {billing.CLUSTER_TAG} tag. If awsc clusters ran, activate the tag in the "
            f"Billing console (Cost allocation tags, {billing.CLUSTER_TAG}, Activate): costs carry it from then "
            "on, within a day."
        )
    for line in billing.free_tier_bill_lines(plan, usage, error):
        typer.echo(line)
