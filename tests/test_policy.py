"""Least privilege: the IAM policy `awsc doctor --policy` prints is enough for a whole cluster's life,
and nothing outside it is allowed, on an emulator with IAM enforcement on.

The emulator (moto) checks a policy's actions but not its Resource or Condition parts (a Condition
it cannot evaluate denies). So the user here holds the policy's actions with any resource, which
proves the action list complete and closed; the tag conditions and resource limits, which only
real AWS evaluates, are checked as written.
"""

import json
import subprocess
import urllib.request

import pytest
from botocore.exceptions import ClientError
from conftest import DATA, VENV_BIN, by_node, isolated_env, provision, start_emulator, terminate

READ_ONLY = {
    "ec2:Describe*",
    "servicequotas:GetServiceQuota",
    "freetier:GetAccountPlanState",
    "freetier:GetFreeTierUsage",
    "ce:GetCostAndUsage",
}
EC2_CREATES = {"ec2:RunInstances", "ec2:CreateVolume", "ec2:CreateSecurityGroup", "ec2:ImportKeyPair"}


def printed_policy(env) -> dict:
    out = subprocess.run([str(VENV_BIN / "awsc"), "doctor", "--policy"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def actions(statement: dict) -> set[str]:
    return {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])


def as_the_emulator_checks_it(policy: dict) -> dict:
    return {
        "Version": policy["Version"],
        "Statement": [
            {"Effect": s["Effect"], "Action": sorted(actions(s)), "Resource": "*"} for s in policy["Statement"]
        ],
    }


def enforce(emulator, count: str) -> None:
    """IAM enforcement from the next call on ("0"), or off again ("inf")."""
    request = urllib.request.Request(
        f"{emulator.endpoint}/moto-api/reset-auth", data=count.encode(), headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local emulator
        assert response.status == 200


@pytest.fixture(scope="module")
def strict_emulator(tmp_path_factory):
    emu = start_emulator(DATA / "amis.json", tmp_path_factory.mktemp("strict") / "moto.log")
    yield emu
    emu.stop()


def test_the_printed_policy_is_enough_for_a_cluster_and_nothing_else(strict_emulator, tmp_path):
    env = isolated_env(tmp_path / "home", strict_emulator.endpoint)
    policy = printed_policy(env)

    iam = strict_emulator.client("iam")
    iam.create_user(UserName="student")
    iam.put_user_policy(
        UserName="student", PolicyName="awsc", PolicyDocument=json.dumps(as_the_emulator_checks_it(policy))
    )
    key = iam.create_access_key(UserName="student")["AccessKey"]
    env.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    ec2 = strict_emulator.client()
    enforce(strict_emulator, "0")
    try:
        # An elastic cluster, so the master's role and instance profile are made and deleted too.
        provision(env, "least", workers=1, max_workers=2, ssh_cidr="198.51.100.7/32")
        terminate(env, "least", delete_volume=True)

        import boto3

        student = boto3.session.Session(
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1"
        )
        for call in (
            lambda: student.client("ec2", endpoint_url=strict_emulator.endpoint).create_vpc(CidrBlock="10.9.0.0/16"),
            lambda: student.client("iam", endpoint_url=strict_emulator.endpoint).create_user(UserName="mallory"),
        ):
            with pytest.raises(ClientError) as denied:
                call()
            assert denied.value.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation")
    finally:
        enforce(strict_emulator, "inf")
    assert by_node(ec2, "least") == {}


def test_the_policy_limits_what_it_allows_by_tags_and_names(env):
    statements = printed_policy(env)["Statement"]
    assert all(s["Effect"] == "Allow" for s in statements)
    for statement in statements:
        found = actions(statement)
        if any(a.startswith("iam:") for a in found):
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            assert all(r.endswith(("role/awsc-*-master", "instance-profile/awsc-*-master")) for r in resources)
        elif statement["Resource"] == "*" and found - READ_ONLY:
            # What changes or ends a resource: only one that already carries an awsc tag.
            (tag,) = statement["Condition"]["Null"]
            assert tag in ("ec2:ResourceTag/awsc:cluster", "ec2:ResourceTag/awsc:image")
        elif found & EC2_CREATES and "Condition" in statement:
            (tag,) = statement["Condition"]["Null"]
            assert tag in ("aws:RequestTag/awsc:cluster", "aws:RequestTag/awsc:image")
    # No statement lets instances, volumes, groups or key pairs be created untagged.
    for statement in statements:
        if "Condition" not in statement and actions(statement) & EC2_CREATES:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert not [r for r in resources if r.endswith((":instance/*", ":volume/*", ":key-pair/*"))] or (
                actions(statement) <= {"ec2:RunInstances", "ec2:RequestSpotInstances"}
                and not [r for r in resources if r.endswith((":instance/*", ":volume/*"))]
            ), statement
    (passrole,) = [s for s in statements if "iam:PassRole" in actions(s)]
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
