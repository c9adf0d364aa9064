"""`awsc doctor`: what a launch needs, checked one by one, each failure with its fix."""

import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awsc import cloud, config, paths
from awsc.errors import AwscError

# "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", in vCPUs.
STANDARD_QUOTA = ("ec2", "L-1216C47A")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _credentials(region: str) -> Check:
    try:
        who = cloud.call(cloud.client("sts", region).get_caller_identity)
    except AwscError as e:
        return Check("credentials", False, str(e), "set AWS_PROFILE (`aws configure`) or AWS_ACCESS_KEY_ID/SECRET")
    return Check("credentials", True, f"account {who['Account']} as {who['Arn']}")


def _region(region: str) -> Check:
    try:
        found = cloud.call(cloud.client("ec2", region).describe_regions, RegionNames=[region])["Regions"]
    except AwscError as e:
        return Check("region", False, f"{region}: {e}", "pick one of `aws ec2 describe-regions`: --region REGION")
    status = found[0].get("OptInStatus", "opt-in-not-required") if found else "unknown"
    if status == "not-opted-in":
        return Check("region", False, f"{region} is not enabled for the account", "enable it in the AWS console")
    return Check("region", True, f"{region} ({status})")


def _keys() -> Check:
    folder = paths.config_dir() / "keys"
    keys = sorted(folder.glob("*.pem")) if folder.exists() else []
    if not keys:
        return Check("key files", True, f"none yet in {folder} (`awsc up` creates one per cluster)")
    loose = [k for k in keys if stat.S_IMODE(k.stat().st_mode) & 0o077]
    if loose:
        names = " ".join(str(k) for k in loose)
        return Check("key files", False, f"readable by others: {names}", f"chmod 600 {names}")
    return Check("key files", True, f"{len(keys)} in {folder}, mode 0600")


def _ami(settings: dict[str, Any]) -> Check:
    region = settings["region"]
    ec2 = cloud.client("ec2", region)
    try:
        if settings.get("ami"):
            images = cloud.call(ec2.describe_images, ImageIds=[settings["ami"]])["Images"]
        else:
            debian = config.playbook_vars()["awsc_debian_ami"]
            images = cloud.call(
                ec2.describe_images,
                Owners=[debian["owner"]],
                Filters=[
                    {"Name": "name", "Values": [debian["name"]]},
                    {"Name": "architecture", "Values": [debian["architecture"]]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )["Images"]
    except AwscError as e:
        images, error = [], str(e)
    else:
        error = ""
    if not images:
        what = f"AMI {settings['ami']}" if settings.get("ami") else "an official Debian 12 AMI"
        return Check(
            "AMI", False, f"no {what} in {region} {error}".strip(), "pass an AMI of that region: --ami ami-..."
        )
    newest = max(images, key=lambda i: i.get("CreationDate", ""))
    return Check("AMI", True, f"{newest['ImageId']} ({newest.get('Name', '')})")


def _quota(settings: dict[str, Any]) -> Check:
    region = settings["region"]
    ec2 = cloud.client("ec2", region)
    types = {settings["master_instance_type"]: 1}
    types[settings["worker_instance_type"]] = types.get(settings["worker_instance_type"], 0) + int(settings["workers"])
    try:
        described = cloud.call(ec2.describe_instance_types, InstanceTypes=list(types))["InstanceTypes"]
    except AwscError as e:
        return Check(
            "instance types", False, str(e), "use instance types offered in the region (--master-type/--worker-type)"
        )
    vcpus = {t["InstanceType"]: t["VCpuInfo"]["DefaultVCpus"] for t in described}
    needed = sum(vcpus.get(t, 0) * n for t, n in types.items())
    try:
        quota = cloud.call(
            cloud.client("service-quotas", region).get_service_quota,
            ServiceCode=STANDARD_QUOTA[0],
            QuotaCode=STANDARD_QUOTA[1],
        )["Quota"]["Value"]
    except AwscError as e:
        return Check("instance quota", True, f"{needed} vCPUs needed; the quota could not be read ({e})")
    if needed > quota:
        return Check(
            "instance quota",
            False,
            f"{needed} vCPUs needed, the on-demand standard quota is {quota:g}",
            "ask for more in Service Quotas (EC2, L-1216C47A) or launch fewer/smaller workers",
        )
    return Check("instance quota", True, f"{needed} vCPUs needed of {quota:g} (on-demand standard)")


def _tools() -> Check:
    bindir = Path(sys.executable).parent
    missing = [
        tool
        for tool in ("ansible-playbook", "ssh")
        if not (bindir / tool).exists() and not shutil.which(tool, path=os.environ.get("PATH"))
    ]
    if missing:
        return Check(
            "tools",
            False,
            f"missing: {', '.join(missing)}",
            "install awsc with its venv (`make venv`) and openssh-client",
        )
    return Check("tools", True, "ansible-playbook and ssh found")


def run_all(settings: dict[str, Any]) -> list[Check]:
    checks = [_tools(), _credentials(settings["region"])]
    if not checks[-1].ok:
        return checks
    checks.append(_region(settings["region"]))
    checks.append(_keys())
    if checks[2].ok:
        checks += [_ami(settings), _quota(settings)]
    return checks
