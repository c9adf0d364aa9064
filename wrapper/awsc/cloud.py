"""Read-only AWS queries for ls, status, leftovers, prices and doctor (boto3).

Nothing here creates or changes a resource: the playbooks do that. Clients use the standard AWS
configuration (AWS_PROFILE, AWS_ENDPOINT_URL, ...), the playbooks' adaptive retries and short
timeouts, so that a missing network or missing credentials shows up as one line, quickly.
"""

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from awsc.errors import AwscError


def alive_states() -> list[str]:
    """Instance states that exist and may bill (vars/cluster.yml: awsc_alive_states)."""
    from awsc import config

    return config.playbook_vars()["awsc_alive_states"]


def retry_attempts() -> int:
    """botocore's attempts per call, as the playbooks' awsc_aws_config says."""
    from awsc import config

    return int(config.playbook_vars()["awsc_aws_config"]["retries"]["max_attempts"])


def client(service: str, region: str, attempts: int | None = None):
    """attempts: fewer tries, for a call whose answer is nice to have (the Free Tier API)."""
    import boto3
    from botocore.config import Config

    # Adaptive retries, as the playbooks' awsc_aws_config: a throttled call waits and tries again.
    retries = {"max_attempts": attempts or retry_attempts(), "mode": "adaptive"}
    config = Config(connect_timeout=5, read_timeout=20, retries=retries)
    return boto3.session.Session().client(service, region_name=region, config=config)


def describe_error(error: Exception) -> str:
    """One short line: the error code and message, without HTML bodies some endpoints return."""
    import re

    code = getattr(error, "response", {}).get("Error", {}).get("Code") if hasattr(error, "response") else None
    text = " ".join(re.sub(r"<[^>]*>.*", " ", str(error), flags=re.S).split())
    text = f"{code}: {text}" if code and code not in text else text
    return text if len(text) <= 160 else text[:157] + "..."


def call(function, *args, **kwargs):
    """Calls boto3; credentials and network problems become one AwscError line."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    try:
        return function(*args, **kwargs)
    except (NoCredentialsError, PartialCredentialsError) as e:
        raise AwscError(
            "No AWS credentials: set AWS_PROFILE (see `aws configure`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ) from e
    except NoRegionError as e:
        raise AwscError("No AWS region: pass --region or set region in [defaults] of the config.") from e
    except EndpointConnectionError as e:
        raise AwscError(f"AWS could not be reached ({e}): check the region and your network.") from e
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken"):
            raise AwscError(f"AWS refused the credentials ({describe_error(e)}): check AWS_PROFILE or the keys.") from e
        raise AwscError(f"AWS said: {describe_error(e)}") from e


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@dataclass
class Node:
    node: str  # master, node001, ... (the instance id while unnamed)
    role: str  # master | worker
    instance_id: str
    instance_type: str
    state: str
    public_ip: str | None
    private_ip: str | None
    launched: str  # ISO 8601, UTC
    lifecycle: str  # on-demand | spot
    user: str
    key_name: str
    zone: str
    image_id: str
    tags: dict[str, str] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        shown.pop("tags")
        return shown


def _node(instance: dict[str, Any]) -> Node:
    tags = _tags(instance)
    launched = instance.get("LaunchTime")
    return Node(
        node=tags.get("awsc:node", instance["InstanceId"]),
        role=tags.get("awsc:role", "worker"),
        instance_id=instance["InstanceId"],
        instance_type=instance["InstanceType"],
        state=instance["State"]["Name"],
        public_ip=instance.get("PublicIpAddress"),
        private_ip=instance.get("PrivateIpAddress"),
        launched=launched.astimezone(UTC).isoformat() if isinstance(launched, datetime) else str(launched or ""),
        lifecycle=instance.get("InstanceLifecycle", "on-demand"),
        user=tags.get("awsc:user", "admin"),
        key_name=instance.get("KeyName", ""),
        zone=instance.get("Placement", {}).get("AvailabilityZone", ""),
        image_id=instance.get("ImageId", ""),
        tags=tags,
    )


def _instances(ec2, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pages = call(lambda: list(ec2.get_paginator("describe_instances").paginate(Filters=filters)))
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def _sort_key(node: Node) -> tuple[int, str]:
    return (0 if node.role == "master" else 1, node.node)


def nodes(region: str, name: str, ec2=None) -> list[Node]:
    """The cluster's live instances, master first, then workers by name."""
    ec2 = ec2 or client("ec2", region)
    found = _instances(
        ec2,
        [{"Name": "tag:awsc:cluster", "Values": [name]}, {"Name": "instance-state-name", "Values": alive_states()}],
    )
    return sorted((_node(i) for i in found), key=_sort_key)


def all_clusters(region: str, ec2=None) -> dict[str, list[Node]]:
    ec2 = ec2 or client("ec2", region)
    alive = {"Name": "instance-state-name", "Values": alive_states()}
    found = _instances(ec2, [{"Name": "tag-key", "Values": ["awsc:cluster"]}, alive])
    clusters: dict[str, list[Node]] = {}
    for instance in found:
        clusters.setdefault(_tags(instance)["awsc:cluster"], []).append(_node(instance))
    return {name: sorted(members, key=_sort_key) for name, members in sorted(clusters.items())}


def ended_clusters(region: str, alive: set[str], ec2=None) -> list[str]:
    """Clusters with no live instance whose security group is still there: ended by their guard
    (which leaves the group, key pair and /data volume for `awsc up` or `awsc down`), or by hand."""
    ec2 = ec2 or client("ec2", region)
    groups = call(ec2.describe_security_groups, Filters=[{"Name": "tag-key", "Values": ["awsc:cluster"]}])
    names = {
        _tags(g)["awsc:cluster"]
        for g in groups["SecurityGroups"]
        if g["GroupName"] == f"awsc-{_tags(g)['awsc:cluster']}"
    }
    return sorted(names - alive)


def ended_by(region: str, ec2=None) -> dict[str, str]:
    """Why each cluster's guard ended (or stopped) it: its master's tag awsc:ended-by, newest launch
    first. EC2 shows a terminated instance for about an hour; a stopped one keeps it."""
    ec2 = ec2 or client("ec2", region)
    masters = _instances(
        ec2, [{"Name": "tag-key", "Values": ["awsc:ended-by"]}, {"Name": "tag:awsc:role", "Values": ["master"]}]
    )
    reasons: dict[str, str] = {}
    for master in sorted(masters, key=lambda i: str(i.get("LaunchTime", ""))):
        tags = _tags(master)
        if "awsc:cluster" in tags:
            reasons[tags["awsc:cluster"]] = tags["awsc:ended-by"]
    return reasons


def volumes(region: str, name: str | None = None, ec2=None) -> list[dict[str, Any]]:
    """Volumes of a cluster (tag awsc:cluster), or, without a name, every volume awsc made or adopted."""
    ec2 = ec2 or client("ec2", region)
    if name:
        filters = [{"Name": "tag:awsc:cluster", "Values": [name]}]
        found = call(ec2.describe_volumes, Filters=filters)["Volumes"]
    else:
        found = {}
        for key in ("awsc:cluster", "awsc:volume"):
            for v in call(ec2.describe_volumes, Filters=[{"Name": "tag-key", "Values": [key]}])["Volumes"]:
                found[v["VolumeId"]] = v
        found = list(found.values())
    return [
        {
            "id": v["VolumeId"],
            "name": _tags(v).get("Name", ""),
            "cluster": _tags(v).get("awsc:cluster", ""),
            "role": _tags(v).get("awsc:role", "root" if _tags(v).get("awsc:cluster") else "data"),
            "size_gib": v["Size"],
            "zone": v["AvailabilityZone"],
            "state": v["State"],
            "attached_to": [a["InstanceId"] for a in v.get("Attachments", [])],
        }
        for v in sorted(found, key=lambda v: v["VolumeId"])
    ]


def images(region: str, ec2=None) -> list[dict[str, Any]]:
    """awsc's baked images (tag awsc:image), oldest first, with their snapshots."""
    ec2 = ec2 or client("ec2", region)
    filters = [{"Name": "tag-key", "Values": ["awsc:image"]}]
    found = call(ec2.describe_images, Owners=["self"], Filters=filters)["Images"]
    rows = []
    for image in sorted(found, key=lambda i: (i.get("CreationDate", ""), i["ImageId"])):
        tags = _tags(image)
        disks = [m["Ebs"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
        rows.append(
            {
                "name": tags["awsc:image"],
                "id": image["ImageId"],
                "created": image.get("CreationDate", ""),
                "state": image["State"],
                "digest": tags.get("awsc:digest", ""),
                "collection": tags.get("awsc:collection", ""),
                "snapshots": [d["SnapshotId"] for d in disks],
                "snapshot_gib": sum(int(d.get("VolumeSize", 0)) for d in disks),
            }
        )
    return rows


def leftovers(region: str, name: str, ec2=None) -> list[dict[str, Any]]:
    """What still carries the cluster's tag: volumes and snapshots (as terminate.yml lists them)."""
    ec2 = ec2 or client("ec2", region)
    tag = [{"Name": "tag:awsc:cluster", "Values": [name]}]
    found = [
        {"type": "volume", "id": v["VolumeId"], "size_gib": v["Size"]}
        for v in call(ec2.describe_volumes, Filters=tag)["Volumes"]
        if v["State"] in ("creating", "available", "in-use")
    ]
    found += [
        {"type": "snapshot", "id": s["SnapshotId"], "size_gib": s["VolumeSize"]}
        for s in call(ec2.describe_snapshots, Filters=tag, OwnerIds=["self"])["Snapshots"]
    ]
    return found


def exists(region: str, name: str, ec2=None) -> bool:
    """Anything of the cluster: a live instance, its security group or key pair, or a tagged volume."""
    ec2 = ec2 or client("ec2", region)
    if nodes(region, name, ec2):
        return True
    groups = call(ec2.describe_security_groups, Filters=[{"Name": "group-name", "Values": [f"awsc-{name}"]}])
    if groups["SecurityGroups"]:
        return True
    keys = call(ec2.describe_key_pairs, Filters=[{"Name": "key-name", "Values": [f"awsc-{name}"]}])
    return bool(keys["KeyPairs"]) or bool(leftovers(region, name, ec2))


def ssh_cidr(region: str, name: str, ec2=None) -> str | None:
    """The address range the cluster's security group lets SSH in from."""
    ec2 = ec2 or client("ec2", region)
    groups = call(ec2.describe_security_groups, Filters=[{"Name": "group-name", "Values": [f"awsc-{name}"]}])
    for group in groups["SecurityGroups"]:
        for rule in group.get("IpPermissions", []):
            if rule.get("FromPort") == 22 and rule.get("IpRanges"):
                return rule["IpRanges"][0]["CidrIp"]
    return None


def settings_of(region: str, name: str, members: list[Node], ec2=None) -> dict[str, Any]:
    """The settings an existing cluster was provisioned with, as far as AWS shows them."""
    master = next((n for n in members if n.role == "master"), None)
    workers = [n for n in members if n.role == "worker"]
    found: dict[str, Any] = {"region": region, "workers": len(workers)}
    if master:
        from awsc import config

        found.update(master_instance_type=master.instance_type, ami=master.image_id, availability_zone=master.zone)
        found.update(config.settings_from_tags(master.tags))
        if master.key_name and master.key_name != f"awsc-{name}":
            found["key_name"] = master.key_name
    if workers:
        found["worker_instance_type"] = workers[0].instance_type
    cidr = ssh_cidr(region, name, ec2)
    if cidr:
        found["ssh_cidr"] = cidr
    return found


def spot_price(region: str, instance_type: str, zone: str | None = None, ec2=None) -> float | None:
    """The latest Linux spot price of a type (in a zone when given), or None when there is none."""
    history = spot_history(region, instance_type, ec2=ec2, hours=6)
    if zone:
        history = [h for h in history if h["zone"] == zone] or history
    return history[0]["price"] if history else None


def spot_history(region: str, instance_type: str, ec2=None, hours: int = 24) -> list[dict[str, Any]]:
    from datetime import timedelta

    ec2 = ec2 or client("ec2", region)
    start = datetime.now(UTC) - timedelta(hours=hours)
    found = call(
        ec2.describe_spot_price_history,
        InstanceTypes=[instance_type],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=start,
    )["SpotPriceHistory"]
    rows = [
        {
            "zone": h["AvailabilityZone"],
            "instance_type": h["InstanceType"],
            "price": float(h["SpotPrice"]),
            "time": h["Timestamp"].astimezone(UTC).isoformat(),
        }
        for h in found
    ]
    return sorted(rows, key=lambda r: r["time"], reverse=True)


def instance_type_exists(region: str, instance_type: str, ec2=None) -> bool:
    from botocore.exceptions import ClientError

    ec2 = ec2 or client("ec2", region)

    def ask() -> bool:
        try:
            return bool(ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"])
        except ClientError as e:
            if e.response.get("Error", {}).get("Code", "").startswith("InvalidInstanceType"):
                return False
            raise

    return call(ask)
