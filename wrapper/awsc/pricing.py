"""What a cluster costs: the shipped price table, the estimate before `up`, refresh from the Price List API.

The table (``awsc/data/prices.json``, or the refreshed copy ``$XDG_CACHE_HOME/awsc/prices.json``
when there is one) holds, per region: on-demand USD/hour of common instance types (Linux, shared
tenancy), gp3 and snapshot storage in USD per GiB-month, and public IPv4 in USD/hour; ``taken``
says when, ``source`` from where.

A running cluster costs per hour: its instances (on-demand, or spot workers at the current spot
price, at most ``spot_max_price``), one public IPv4 address per node, and its EBS volumes (root
volumes and ``/data``) billed per GiB-month, counted here as 730 hours a month.
"""

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from awsc import paths
from awsc.errors import AwscError

SHIPPED = Path(__file__).resolve().parent / "data" / "prices.json"
HOURS_PER_MONTH = 730
# The Price List API's name of each region (its `location` attribute), for the regions of the table.
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
}


def refreshed_file() -> Path:
    return paths.cache_dir() / "prices.json"


def load_table() -> dict[str, Any]:
    path = refreshed_file()
    return json.loads((path if path.exists() else SHIPPED).read_text())


@dataclass
class Line:
    what: str
    count: int
    unit: float | None  # USD per hour (or per GiB-month for storage)
    per_hour: float | None
    note: str = ""


@dataclass
class Estimate:
    region: str
    lines: list[Line] = field(default_factory=list)
    storage_gib: int = 0
    storage_month: float = 0.0
    unknown: list[str] = field(default_factory=list)
    spot_hour: float = 0.0  # what the spot workers cost per hour now (counted in per_hour)
    spot_max_hour: float | None = None  # the most the spot workers can cost, per hour
    # Elastic workers (max_workers above workers): how many Slurm may start, and what they add per
    # hour while all run (instance, IPv4, root volume); per_hour counts none of them.
    elastic_workers: int = 0
    elastic_hour: float = 0.0
    taken: str = ""

    @property
    def per_hour(self) -> float:
        return sum(line.per_hour or 0.0 for line in self.lines)

    @property
    def most_per_hour(self) -> float:
        """The most it can cost per hour (spot workers at their maximum, every elastic worker up): what
        the guard's budget counts."""
        spot = 0.0 if self.spot_max_hour is None else self.spot_max_hour - self.spot_hour
        return self.per_hour + spot + self.elastic_hour

    @property
    def per_month(self) -> float:
        return self.per_hour * HOURS_PER_MONTH

    @property
    def complete(self) -> bool:
        return not self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "per_hour": round(self.per_hour, 6),
            "per_month": round(self.per_month, 2),
            "storage_gib": self.storage_gib,
            "storage_month": round(self.storage_month, 2),
            "unknown": self.unknown,
            "prices_taken": self.taken,
            "elastic_workers": self.elastic_workers,
            "most_per_hour": round(self.most_per_hour, 6),
            "lines": [
                {"what": x.what, "count": x.count, "unit": x.unit, "per_hour": x.per_hour, "note": x.note}
                for x in self.lines
            ],
        }


def region_prices(table: dict[str, Any], region: str) -> dict[str, Any]:
    prices = table["regions"].get(region)
    if prices is None:
        # Storage and IPv4 prices barely differ between regions: use us-east-1's, say so.
        prices = dict(table["regions"]["us-east-1"], instance_hour={})
    return prices


def instance_price(table: dict[str, Any], region: str, instance_type: str) -> float | None:
    return table["regions"].get(region, {}).get("instance_hour", {}).get(instance_type)


def estimate(
    settings: dict[str, Any], table: dict[str, Any] | None = None, spot_price: float | None = None
) -> Estimate:
    """The cost per hour of a cluster with these settings, running.

    spot_price: the current spot price of the worker type (describe_spot_price_history), used for
    spot workers when given, capped at spot_max_price; without it they are counted at spot_max_price.
    """
    table = table or load_table()
    region = settings["region"]
    prices = region_prices(table, region)
    est = Estimate(region=region, taken=table.get("taken", ""))
    workers = int(settings["workers"])
    nodes = 1 + workers

    def on_demand(instance_type: str) -> float | None:
        price = prices["instance_hour"].get(instance_type)
        if price is None and instance_type not in est.unknown:
            est.unknown.append(instance_type)
        return price

    master = on_demand(settings["master_instance_type"])
    est.lines.append(Line(f"master {settings['master_instance_type']}", 1, master, master, "on-demand"))
    if workers:
        worker_type = settings["worker_instance_type"]
        spot_max = settings.get("spot_max_price")
        if spot_max not in (None, ""):
            cap = float(spot_max)
            unit = min(cap, spot_price) if spot_price is not None else cap
            note = f"spot, current price ${spot_price:g}" if spot_price is not None else "spot, at the max price"
            est.lines.append(Line(f"workers {worker_type}", workers, unit, unit * workers, note))
            est.spot_hour, est.spot_max_hour = unit * workers, cap * workers
        else:
            unit = on_demand(worker_type)
            est.lines.append(
                Line(f"workers {worker_type}", workers, unit, None if unit is None else unit * workers, "on-demand")
            )
    ipv4 = prices["public_ipv4_hour"]
    est.lines.append(Line("public IPv4 addresses", nodes, ipv4, ipv4 * nodes))
    root_gib = int(settings["root_volume_size"])
    est.elastic_workers = max(0, int(settings.get("max_workers") or workers) - workers)
    if est.elastic_workers:
        # On demand: elastic workers are launched by the master, never as spot instances.
        unit = on_demand(settings["worker_instance_type"]) or 0.0
        per_node = unit + ipv4 + root_gib * prices["gp3_gib_month"] / HOURS_PER_MONTH
        est.elastic_hour = est.elastic_workers * per_node
    gib = nodes * root_gib
    if not settings.get("volume_id"):
        gib += int(settings["volume_size"])
    est.storage_gib = gib
    est.storage_month = gib * prices["gp3_gib_month"]
    note = f"{gib} GiB gp3 at ${prices['gp3_gib_month']:g}/GiB-month = ${est.storage_month:.2f}/month"
    if settings.get("volume_id"):
        note += f" (+ the reused volume {settings['volume_id']}, billing already)"
    est.lines.append(
        Line(
            "EBS volumes",
            nodes + (0 if settings.get("volume_id") else 1),
            None,
            est.storage_month / HOURS_PER_MONTH,
            note,
        )
    )
    return est


def storage_month(table: dict[str, Any], region: str, kind: str, gib: int) -> float:
    """Monthly cost of a volume ('volume') or snapshot ('snapshot') of `gib` GiB."""
    prices = region_prices(table, region)
    unit = prices["snapshot_gib_month"] if kind == "snapshot" else prices["gp3_gib_month"]
    return gib * unit


# ---- Refresh from the AWS Price List API --------------------------------------------------------


def parse_price_list(price_list: list[str | dict[str, Any]]) -> dict[str, dict[str, float]]:
    """On-demand USD/hour per region and instance type, from GetProducts' PriceList entries.

    Each entry is a JSON document (a string, as boto3 returns it) of one product: its attributes
    (instanceType, regionCode, operatingSystem, tenancy, capacitystatus, preInstalledSw) and its
    OnDemand terms, whose price dimension in "Hrs" holds pricePerUnit.USD.
    """
    prices: dict[str, dict[str, float]] = {}
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        attrs = product.get("product", {}).get("attributes", {})
        if (
            attrs.get("operatingSystem") != "Linux"
            or attrs.get("tenancy") != "Shared"
            or attrs.get("capacitystatus", "Used") != "Used"
            or attrs.get("preInstalledSw", "NA") != "NA"
            or "instanceType" not in attrs
        ):
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if dimension.get("unit") == "Hrs" and usd is not None and float(usd) > 0:
                    prices.setdefault(attrs["regionCode"], {})[attrs["instanceType"]] = float(usd)
    return prices


def refresh(types: list[str] | None = None, regions: list[str] | None = None, client=None) -> tuple[Path, int]:
    """Asks the Price List API (us-east-1) for the table's instance types; writes the refreshed table."""
    table = load_table()
    regions = regions or list(table["regions"])
    if client is None:
        from awsc import cloud

        client = cloud.client("pricing", "us-east-1")
    found = 0
    try:
        for region in regions:
            wanted = sorted(set(types or []) | set(table["regions"].get(region, {}).get("instance_hour", {})))
            pages = client.get_paginator("get_products").paginate(
                ServiceCode="AmazonEC2",
                Filters=[
                    {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
                    {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                    {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                    {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                    {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
                ],
            )
            parsed: dict[str, float] = {}
            for page in pages:
                parsed.update(parse_price_list(page.get("PriceList", [])).get(region, {}))
            entry = table["regions"].setdefault(region, dict(region_prices(table, "us-east-1"), instance_hour={}))
            for instance_type in wanted:
                if instance_type in parsed:
                    entry["instance_hour"][instance_type] = parsed[instance_type]
                    found += 1
    except Exception as e:  # botocore's errors, without importing botocore at module level
        from awsc import cloud

        raise AwscError(
            f"The AWS Price List API is not reachable ({cloud.describe_error(e)}): the shipped table stays."
        ) from e
    if not found:
        raise AwscError("The AWS Price List API returned no prices: the shipped table stays.")
    table["taken"] = date.today().isoformat()
    table["source"] = "AWS Price List API (GetProducts, AmazonEC2, Linux, shared tenancy), via awsc price --refresh"
    path = refreshed_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=1) + "\n")
    return path, found
