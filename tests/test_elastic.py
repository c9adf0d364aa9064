"""Elastic workers, against the EC2 emulator: the master's IAM role and instance profile, and what
the master's awsc-elastic (roles/elastic/files/awsc_elastic.py) asks of EC2 and of Slurm: its
launch's parameters, its fenced terminate, the inventory it configures new nodes with, and its
reconciler's and dead-man switch's decisions from recorded sinfo outputs.

Slurm's power saving running end to end: tests/test_local_cloud_elastic.py."""

import datetime
import importlib.util
import json
import sys

import pytest
from conftest import NEWEST_DEBIAN_AMI, REPO, by_node, instances, provision, shutdown_behaviour, tags, terminate

POLICY_ACTIONS = {"ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances", "ec2:StopInstances", "ec2:Describe*"}

spec = importlib.util.spec_from_file_location(
    "awsc_elastic", REPO / "collections/ansible_collections/awsc/cluster/roles/elastic/files/awsc_elastic.py"
)
elastic = importlib.util.module_from_spec(spec)
sys.modules["awsc_elastic"] = elastic
spec.loader.exec_module(elastic)


def role_policy(iam, role: str) -> dict:
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert names == ["awsc-master"]
    document = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def statements(policy: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in policy["Statement"]}


@pytest.fixture
def bystander_role(iam):
    """A role awsc did not make (no cluster tag), and one of another cluster: both must stay."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="not-awsc", AssumeRolePolicyDocument=trust)
    iam.create_role(
        RoleName="awsc-other-master", AssumeRolePolicyDocument=trust, Tags=[{"Key": "awsc:cluster", "Value": "other"}]
    )
    yield ["not-awsc", "awsc-other-master"]
    for role in ("not-awsc", "awsc-other-master"):
        iam.delete_role(RoleName=role)


def test_an_elastic_cluster_master_gets_a_role_that_touches_only_its_cluster(ec2, iam, env, bystander_role):
    provision(env, "el", workers=1, max_workers=3)
    nodes = by_node(ec2, "el")
    assert sorted(nodes) == ["master", "node001"]

    role = iam.get_role(RoleName="awsc-el-master")["Role"]
    assert {t["Key"]: t["Value"] for t in role.get("Tags", [])} == {"awsc:cluster": "el"}
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    profile = iam.get_instance_profile(InstanceProfileName="awsc-el-master")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["awsc-el-master"]
    # Only the master has it: workers never hold cloud rights.
    assert nodes["master"]["IamInstanceProfile"]["Arn"] == profile["Arn"]
    assert "IamInstanceProfile" not in nodes["node001"]

    found = statements(role_policy(iam, "awsc-el-master"))
    actions = set()
    for statement in found.values():
        assert statement["Effect"] == "Allow"
        actions |= {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
    assert actions == POLICY_ACTIONS
    cluster_tag = {"aws:RequestTag/awsc:cluster": "el"}
    assert found["LaunchOnlyTheClustersWorkers"]["Condition"] == {"StringEquals": cluster_tag}
    assert found["TagOnlyAtLaunch"]["Condition"] == {
        "StringEquals": {**cluster_tag, "ec2:CreateAction": "RunInstances"}
    }
    # After a launch, only names (and the guard's reason) on the cluster's own instances.
    assert found["NameOnlyTheClustersInstances"]["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/awsc:cluster": "el"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["Name", "awsc:node", "awsc:ended-by"]},
    }
    assert found["EndOnlyTheClustersInstances"]["Condition"] == {"StringEquals": {"ec2:ResourceTag/awsc:cluster": "el"}}
    assert set(found["EndOnlyTheClustersInstances"]["Action"]) == {"ec2:TerminateInstances", "ec2:StopInstances"}
    # The unconditioned launch parts are the cluster's own: its image, subnet, group and key.
    master = nodes["master"]
    parts = found["LaunchFromTheClustersParts"]["Resource"]
    assert f"arn:aws:ec2:us-east-1::image/{master['ImageId']}" in parts
    assert f"arn:aws:ec2:us-east-1:*:subnet/{master['SubnetId']}" in parts
    assert f"arn:aws:ec2:us-east-1:*:security-group/{master['SecurityGroups'][0]['GroupId']}" in parts
    assert "arn:aws:ec2:us-east-1:*:key-pair/awsc-el" in parts
    assert found["Read"] == {"Sid": "Read", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}

    assert provision(env, "el", workers=1, max_workers=3).changed == 0

    terminate(env, "el", delete_volume=True)
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == "awsc-el-master"] == []
    assert "awsc-el-master" not in {p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]}
    assert {r["RoleName"] for r in iam.list_roles()["Roles"]} >= set(bystander_role)
    assert instances(ec2, "el") == []


def test_a_cluster_without_elastic_workers_has_a_role_that_only_records_why_its_guard_ended_it(ec2, iam, env):
    provision(env, "fixed", workers=1)
    nodes = by_node(ec2, "fixed")
    profile = iam.get_instance_profile(InstanceProfileName="awsc-fixed-master")["InstanceProfile"]
    assert nodes["master"]["IamInstanceProfile"]["Arn"] == profile["Arn"]
    assert "IamInstanceProfile" not in nodes["node001"]
    found = statements(role_policy(iam, "awsc-fixed-master"))
    assert sorted(found) == ["NameOnlyTheClustersInstances", "Read"]
    assert found["NameOnlyTheClustersInstances"]["Action"] == "ec2:CreateTags"
    terminate(env, "fixed", delete_volume=True)
    assert "awsc-fixed-master" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}


# ---- awsc-elastic --------------------------------------------------------------------------------


def elastic_config(ec2, cluster: str) -> dict:
    """awsc-elastic's configuration for `cluster`, as the elastic role writes it, with the cluster's
    master running (new nodes take its image, subnet, group and key pair)."""
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    ec2.create_key_pair(KeyName=f"awsc-{cluster}")
    master_tags = {"awsc:cluster": cluster, "awsc:role": "master", "awsc:node": "master"}
    ec2.run_instances(
        ImageId=NEWEST_DEBIAN_AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", KeyName=f"awsc-{cluster}",
        SubnetId=subnet["SubnetId"], SecurityGroupIds=[group["GroupId"]],
        TagSpecifications=[{"ResourceType": "instance", "Tags": elastic.tag_list(master_tags)}],
    )  # fmt: skip
    return {
        "cluster": cluster,
        "region": "us-east-1",
        "instance_type": "t3.micro",
        "subnet_id": subnet["SubnetId"],  # the tests' record, not awsc-elastic's
        "security_group_id": group["GroupId"],
        "root_volume_size": 12,
        "login_user": "admin",
        "tags": {"awsc:user": "admin", "awsc:image": "img"},
        "nodes": ["node002", "node003", "node004"],
        "ssh_key": "/root/.ssh/id_ed25519",
        "known_hosts": "/etc/awsc/elastic/known_hosts",
    }


def test_a_resume_launches_the_nodes_in_one_call_tagged_encrypted_imdsv2_ending_on_poweroff(ec2):
    config = elastic_config(ec2, "burst")
    data = elastic.user_data("-----PRIVATE-----\nabc\n", "ssh-ed25519 AAAAhost", "ssh-ed25519 AAAAroot root")
    by_node = elastic.launch(ec2, config, ["node002", "node003"], data)
    assert sorted(by_node) == ["node002", "node003"]
    found = [i for i in instances(ec2, "burst") if tags(i).get("awsc:elastic")]
    assert len(found) == 2
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:awsc:elastic", "Values": ["true"]}])["Reservations"]
    assert len(reservations) == 1  # one RunInstances
    for instance in found:
        got = tags(instance)
        node = got["awsc:node"]
        assert by_node[node]["InstanceId"] == instance["InstanceId"]
        assert got == {
            "Name": f"burst-{node}",
            "awsc:cluster": "burst",
            "awsc:role": "worker",
            "awsc:elastic": "true",
            "awsc:node": node,
            "awsc:user": "admin",
            "awsc:image": "img",
        }
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        launched_with = (instance["ImageId"], instance["InstanceType"], instance["KeyName"])
        assert launched_with == (NEWEST_DEBIAN_AMI, "t3.micro", "awsc-burst")
        assert instance["SubnetId"] == config["subnet_id"]
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [config["security_group_id"]]
        assert "IamInstanceProfile" not in instance
        assert shutdown_behaviour(ec2, instance) == "terminate"
        [root] = instance["BlockDeviceMappings"]
        volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
        assert (volume["Encrypted"], volume["Size"], volume["VolumeType"]) == (True, 12, "gp3")
        assert tags(volume)["awsc:cluster"] == "burst"
        sent = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        assert "ssh_authorized_keys:\n  - ssh-ed25519 AAAAroot root" in base64_text(sent)

    # What a configure run from the master gets: private addresses, the new nodes through the
    # login user (their user data authorizes root's key for it), host keys checked under aliases.
    hosts = elastic.inventory(config, found, ["node002"])["all"]
    assert sorted(hosts["children"]["elastic"]["hosts"]) == ["burst-node002", "burst-node003"]
    two, three = hosts["hosts"]["burst-node002"], hosts["hosts"]["burst-node003"]
    assert (two["ansible_user"], two["ansible_become"], three["ansible_user"]) == ("admin", True, "root")
    assert two["ansible_host"] == by_node["node002"]["PrivateIpAddress"]
    assert "HostKeyAlias=awsc-burst-node002" in two["ansible_ssh_common_args"] and two["awsc_elastic"] is True


def base64_text(attribute: dict) -> str:
    import base64

    return base64.b64decode(attribute["UserData"]["Value"]).decode()


def test_a_suspend_terminates_only_those_nodes_of_its_cluster(ec2):
    config = elastic_config(ec2, "fence")
    data = elastic.user_data("k", "ssh-ed25519 AAAA", "ssh-ed25519 BBBB")
    by_node = elastic.launch(ec2, config, ["node002", "node003"], data)
    # Bystanders: the same node name in another cluster, the masters, a static worker of this one.
    other = elastic.launch(ec2, elastic_config(ec2, "other"), ["node002"], data)
    masters = {
        i["InstanceId"] for i in instances(ec2, "fence") + instances(ec2, "other") if tags(i)["awsc:node"] == "master"
    }
    static = ec2.run_instances(
        ImageId=NEWEST_DEBIAN_AMI, MinCount=2, MaxCount=2, InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "awsc:cluster", "Value": "fence"}]}],
    )["Instances"]  # fmt: skip
    ec2.create_tags(Resources=[static[0]["InstanceId"]], Tags=[{"Key": "awsc:node", "Value": "master"}])
    ec2.create_tags(Resources=[static[1]["InstanceId"]], Tags=[{"Key": "awsc:node", "Value": "node001"}])

    assert elastic.terminate(ec2, config, ["node002", "master", "node001"]) == [by_node["node002"]["InstanceId"]]
    assert elastic.terminate(ec2, config, ["node009"]) == []
    alive = {i["InstanceId"] for i in instances(ec2, "fence") + instances(ec2, "other")}
    kept = {by_node["node003"]["InstanceId"], other["node002"]["InstanceId"]}
    assert alive == kept | masters | {i["InstanceId"] for i in static}
    # By ids (the reconciler's orphans): only those the cluster's elastic look-up finds.
    assert elastic.terminate(ec2, config, ids=[static[0]["InstanceId"], other["node002"]["InstanceId"]]) == []
    ec2.terminate_instances(InstanceIds=list(alive))


SINFO = """node001|idle~|none
node002|alloc|none
node003|down#|awsc: configure failed at 'Install the munge key'
node004|idle|none
"""


def test_reconcile_ends_orphans_and_powers_down_lost_nodes():
    now = 1_800_000_000.0

    def instance(iid, node=None, age=600):
        found = {"InstanceId": iid, "LaunchTime": datetime.datetime.fromtimestamp(now - age, datetime.UTC), "Tags": []}
        if node:
            found["Tags"].append({"Key": "awsc:node", "Value": node})
        return found

    slurm = elastic.parse_sinfo(SINFO)
    assert slurm["node003"] == ("down#", "awsc: configure failed at 'Install the munge key'")
    nodes = ["node001", "node002", "node003", "node004"]
    running = [
        instance("i-1", "node001"),  # Slurm powered it down: an orphan
        instance("i-2", "node002"),  # running its job
        instance("i-3"),  # never named, 10 minutes old: an orphan
        instance("i-4", age=60),  # just launched, not named yet: left alone
        instance("i-5", "node009"),  # a node Slurm does not have
    ]
    doomed, updates, waiting = elastic.reconcile_plan(
        slurm, running, nodes, now, {"node003": now - elastic.DOWN_SHOWN - 1}
    )
    assert sorted(doomed) == ["i-1", "i-3", "i-5"]
    # node003: down a while, its reason shown: powered down, back in service. node004: up in
    # Slurm's view with no instance: powered down.
    assert updates == [
        ("node003", "power_down_force", "awsc: configure failed at 'Install the munge key'"),
        ("node004", "power_down_force", "its instance is gone"),
    ]
    assert waiting == []
    # Down only just now: the reason stays readable a while longer.
    assert elastic.reconcile_plan(slurm, running, nodes, now, {})[2] == ["node003"]
    # Down and powered down already: it only needs to be in service again.
    slurm["node003"] = ("down~", "awsc: launch failed: EC2 InsufficientInstanceCapacity")
    assert elastic.reconcile_plan(slurm, [], ["node003"], now, {"node003": now - elastic.DOWN_SHOWN - 1})[1] == [
        ("node003", "resume", "awsc: launch failed: EC2 InsufficientInstanceCapacity")
    ]


def test_the_dead_man_switch_waits_its_time():
    assert not elastic.deadman_due(last_seen=1000.0, now=1000.0 + 9 * 60, after_minutes=10)
    assert elastic.deadman_due(last_seen=1000.0, now=1000.0 + 10 * 60, after_minutes=10)
