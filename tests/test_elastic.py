"""Elastic workers, against the EC2 emulator: the master's IAM role and instance profile.

The rest of elastic workers (Slurm's power saving, the master's ResumeProgram) is not built yet.
"""

import json

import pytest
from conftest import by_node, instances, provision, tags, terminate

POLICY_ACTIONS = {"ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances", "ec2:StopInstances", "ec2:Describe*"}


def role_policy(iam, role: str) -> dict:
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert names == ["awsc-elastic-workers"]
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


def test_a_cluster_without_elastic_workers_has_no_role(ec2, iam, env):
    provision(env, "fixed", workers=1)
    master = by_node(ec2, "fixed")["master"]
    assert "IamInstanceProfile" not in master
    assert tags(master)["awsc:role"] == "master"
    assert "awsc-fixed-master" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    terminate(env, "fixed", delete_volume=True)
