"""What the account pays: the free tier's share of a cluster (`awsc up`) and the month's bill
(`awsc bill`).

Free tier: accounts created since 15 July 2025 have a free plan, credits in USD for six months
spent on any service. Older accounts keep the legacy offer: 750 hours a month of
free-tier-eligible instance types (EC2's FreeTierEligible) in their first 12 months, shared by all
their instances, so a master and two workers use them three times as fast. When the Free Tier API
does not answer, one line says so and the command goes on.

Bill: Cost Explorer's month-to-date cost, grouped by the awsc:cluster tag. The tag counts only once
activated as a cost allocation tag, and only from then on; before, every cost is untagged.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

LEGACY_HOURS_A_MONTH = 750
CLUSTER_TAG = "awsc:cluster"


def plan_state(client) -> tuple[dict[str, Any] | None, str | None]:
    """GetAccountPlanState, or why there is none (no permission, no network, the emulator)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.get_account_plan_state(), None
    except (BotoCoreError, ClientError) as error:
        return None, _why(error, "freetier:GetAccountPlanState")


def _why(error: Exception, action: str) -> str:
    """Why the Free Tier API did not answer, in a few words."""
    from awsc.cloud import describe_error

    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    if code.startswith("AccessDenied"):
        return f"not allowed: `awsc doctor --policy` has {action}"
    return f"HTTP {code}" if code.isdigit() else describe_error(error)


def free_tier_client():
    """The Free Tier API has one endpoint, in us-east-1; one try, as its answer is only nice to have."""
    from awsc import cloud

    return cloud.client("freetier", "us-east-1", attempts=1)


def _credits(plan: dict[str, Any]) -> float:
    return float(plan.get("accountPlanRemainingCredits", {}).get("amount", 0))


def _free_plan(plan: dict[str, Any]) -> str | None:
    """The free plan's credits and end, or its state, without a full stop; None for a paid plan."""
    if plan.get("accountPlanType") != "FREE":
        return None
    if plan.get("accountPlanStatus") != "ACTIVE":
        status = str(plan.get("accountPlanStatus", "not active")).lower().replace("_", " ")
        return f"Free tier: your free plan is {status}"
    until = plan.get("accountPlanExpirationDate")
    until = f" until {until:%Y-%m-%d}" if isinstance(until, datetime) else ""
    return f"Free tier: your free plan has ${_credits(plan):.2f} of credits left{until}"


def eligible(ec2, instance_types: list[str]) -> dict[str, bool]:
    """FreeTierEligible of each instance type, as EC2 describes it (empty when EC2 does not say)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = ec2.describe_instance_types(InstanceTypes=sorted(set(instance_types)))["InstanceTypes"]
    except (BotoCoreError, ClientError):
        return {}
    return {t["InstanceType"]: bool(t.get("FreeTierEligible")) for t in found}


def lines(
    plan: dict[str, Any] | None, error: str | None, per_hour: float, node_types: list[str], free: dict[str, bool]
) -> list[str]:
    """What applies to a cluster costing `per_hour` whose nodes have `node_types`."""
    if plan is None:
        return [f"  Free tier: not known, the Free Tier API did not answer ({error}); AWS bills as estimated."]
    free_plan = _free_plan(plan)
    if free_plan and plan.get("accountPlanStatus") != "ACTIVE":
        return [f"  {free_plan}; its credits do not pay for this cluster."]
    if free_plan:
        hours = f"about {_credits(plan) / per_hour:.0f} hours of this cluster" if per_hour > 0 else "this cluster"
        return [f"  {free_plan}: {hours}."]
    eligible_nodes = sum(1 for t in node_types if free.get(t))
    said = [
        "  Free tier: a paid plan. Accounts created before 15 July 2025 get 750 hours a month of free-tier "
        "eligible instances in their first 12 months, shared by all their instances."
    ]
    if eligible_nodes:
        names = ", ".join(sorted({t for t in node_types if free.get(t)}))
        said.append(
            f"  {names}: eligible; this cluster's {eligible_nodes} such instance(s) use those hours up "
            f"in {LEGACY_HOURS_A_MONTH / eligible_nodes:.0f} hours."
        )
    others = sorted({t for t in node_types if t in free and not free[t]})
    if others:
        said.append(f"  {', '.join(others)}: not eligible, billed as estimated.")
    return said


# ---- the bill -----------------------------------------------------------------------------------


@dataclass
class Bill:
    start: str
    end: str
    total_usd: float = 0.0
    untagged_usd: float = 0.0
    clusters: dict[str, float] = field(default_factory=dict)
    estimated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "total_usd": round(self.total_usd, 2),
            "awsc_usd": round(sum(self.clusters.values()), 2),
            "clusters": {name: round(usd, 2) for name, usd in sorted(self.clusters.items())},
            "untagged_usd": round(self.untagged_usd, 2),
            "estimated": self.estimated,
        }


def month(text: str | None, today: date) -> tuple[str, str]:
    """The period of `text` (YYYY-MM, default this month) up to today, as Cost Explorer takes it
    (End exclusive, after Start)."""
    first = date.fromisoformat(f"{text}-01") if text else today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    end = min(following, today + timedelta(days=1))
    if end <= first:
        raise ValueError(f"{text} has not begun")
    return first.isoformat(), end.isoformat()


def bill(ce, start: str, end: str) -> Bill:
    """One get_cost_and_usage: the period's cost grouped by the awsc:cluster tag (its groups add up
    to the account's total; the group with an empty value is everything without the tag)."""
    found = Bill(start, end)
    token = None
    while True:
        page = ce.get_cost_and_usage(
            TimePeriod={"Start": start, "End": end},
            Granularity="MONTHLY",
            Metrics=["UnblendedCost"],
            GroupBy=[{"Type": "TAG", "Key": CLUSTER_TAG}],
            **({"NextPageToken": token} if token else {}),
        )
        for period in page.get("ResultsByTime", []):
            found.estimated = found.estimated or bool(period.get("Estimated"))
            for group in period.get("Groups", []):
                usd = float(group["Metrics"]["UnblendedCost"]["Amount"])
                name = group["Keys"][0].partition("$")[2]
                found.total_usd += usd
                if name:
                    found.clusters[name] = found.clusters.get(name, 0.0) + usd
                else:
                    found.untagged_usd += usd
        token = page.get("NextPageToken")
        if not token:
            return found


def free_tier_usage(client) -> tuple[list[dict[str, Any]], str | None]:
    """The Free Tier API's usage of EC2 offers this month, or why there is none."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        usages = client.get_free_tier_usage()["freeTierUsages"]
    except (BotoCoreError, ClientError) as error:
        return [], _why(error, "freetier:GetFreeTierUsage")
    return [u for u in usages if "Elastic Compute Cloud" in u.get("service", "")], None


def free_tier_bill_lines(plan: dict[str, Any] | None, usage: list[dict[str, Any]], error: str | None) -> list[str]:
    """What `awsc bill` says of the free tier: the plan, then this month's EC2 usage of its offers."""
    if plan is None:
        return [f"Free tier: not known, the Free Tier API did not answer ({error})."]
    free_plan = _free_plan(plan)
    said = [
        f"{free_plan}." if free_plan else "Free tier: a paid plan (older accounts keep 12 months of the legacy offer)."
    ]
    for u in usage:
        what = u.get("description") or u.get("usageType")
        limit = f" of {u['limit']:g}" if u.get("limit") is not None else ""
        said.append(f"  {what}: {u.get('actualUsageAmount', 0):g}{limit} {u.get('unit', '')}".rstrip())
    return said


def free_tier_dict(plan: dict[str, Any] | None, usage: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    """The free tier as `awsc bill --json` gives it."""
    plan = plan or {}
    expires = plan.get("accountPlanExpirationDate")
    return {
        "plan_type": plan.get("accountPlanType"),
        "plan_status": plan.get("accountPlanStatus"),
        "credits_usd": plan.get("accountPlanRemainingCredits", {}).get("amount"),
        "expires": expires.isoformat() if isinstance(expires, datetime) else None,
        "usage": [
            {k: u.get(k) for k in ("description", "usageType", "actualUsageAmount", "limit", "unit")} for u in usage
        ],
        "error": error,
    }
