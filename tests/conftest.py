"""Fixtures shared by the tests: the EC2 emulator, an isolated environment, playbook runs.

Nothing here talks to AWS: every AWS client (amazon.aws modules, the aws_ec2 inventory, boto3)
is pointed at a local emulator, and HTTPS_PROXY points at a closed local port so that a
forgotten endpoint fails here instead of leaving the machine.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from awsc.emulator import start as start_emulator

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
VENV_BIN = Path(sys.executable).parent
# The newest x86_64 Debian 12 image of the official owner in tests/data/amis.json.
NEWEST_DEBIAN_AMI = "ami-0d12bbbbbbbbbbbb2"
CALLER_CIDR = "198.51.100.7/32"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """One EC2 emulator for the session, seeded with Debian AMIs (tests/data/amis.json)."""
    emu = start_emulator(DATA / "amis.json", tmp_path_factory.mktemp("emulator") / "moto.log")
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def ec2(emulator):
    return emulator.client()


@pytest.fixture(scope="session")
def iam(emulator):
    return emulator.client("iam")


def isolated_env(home: Path, endpoint: str | None) -> dict[str, str]:
    """The environment of an Ansible run: nothing from the user's home, no way out."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "ANSIBLE_", "AWSC_", "XDG_")) and k not in ("HOME",)
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(home / ".ansible/tmp"),
        # The EC2 inventory, plus localhost with its temporary files under ANSIBLE_HOME
        # (the local connection would use root's real ~/.ansible/tmp).
        ANSIBLE_INVENTORY=f"{REPO / 'inventory/aws_ec2.yml'},{DATA / 'localhost.yml'}",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
        # The emulator gives instances public addresses from real internet space: anything that
        # connects to nodes goes to their private addresses, which exist only on the local
        # cloud's podman network.
        AWSC_CONNECT="private",
        no_proxy="127.0.0.1,localhost",
        PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    if endpoint:
        env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    return env


@pytest.fixture
def env(emulator, tmp_path):
    return isolated_env(tmp_path / "home", emulator.endpoint)


@dataclass
class Run:
    rc: int
    out: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host, summed over the run's plays."""
        totals: dict[str, dict[str, int]] = {}
        for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.out, re.M):
            for key, value in re.findall(r"(\w+)=(\d+)", counters):
                totals.setdefault(host, {}).setdefault(key, 0)
                totals[host][key] += int(value)
        return totals

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.recap.values())


def run_playbook(playbook: str, env: dict[str, str], check: bool = True, **extra_vars) -> Run:
    """Runs one of the project's playbooks as a user would, from the repository root."""
    args = [str(VENV_BIN / "ansible-playbook"), playbook, "-e", json.dumps(extra_vars)]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    run = Run(proc.returncode, proc.stdout + proc.stderr)
    if check and run.rc != 0:
        pytest.fail(f"{playbook} failed (rc={run.rc}):\n{run.out[-6000:]}")
    return run


def provision(env, name, check=True, **extra) -> Run:
    extra.setdefault("ssh_cidr", CALLER_CIDR)
    return run_playbook("playbooks/provision.yml", env, check=check, name=name, **extra)


def terminate(env, name, check=True, **extra) -> Run:
    return run_playbook("playbooks/terminate.yml", env, check=check, name=name, **extra)


def instances(ec2, name, states=("pending", "running", "stopping", "stopped")) -> list[dict]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:awsc:cluster", "Values": [name]},
            {"Name": "instance-state-name", "Values": list(states)},
        ]
    )
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def shutdown_behaviour(ec2, instance: dict) -> str:
    """What EC2 does when the instance powers itself off: stop or terminate."""
    found = ec2.describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    return found["InstanceInitiatedShutdownBehavior"]["Value"]


def by_node(ec2, name) -> dict[str, dict]:
    """The cluster's live instances by their awsc:node tag (master, node001, ...)."""
    return {tags(i).get("awsc:node", i["InstanceId"]): i for i in instances(ec2, name)}


def tagged_resources(ec2, name) -> list[str]:
    """Everything that exists and carries the cluster's tag (terminated instances excluded)."""
    found = [i["InstanceId"] for i in instances(ec2, name)]
    tag_filter = [{"Name": "tag:awsc:cluster", "Values": [name]}]
    found += [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag_filter)["SecurityGroups"]]
    found += [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag_filter)["KeyPairs"]]
    found += [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag_filter)["Volumes"]]
    found += [s["SnapshotId"] for s in ec2.describe_snapshots(Filters=tag_filter, OwnerIds=["self"])["Snapshots"]]
    return found


def valid(data, schema):
    """`data`, after checking it against a JSON schema of awsc.schemas."""
    import jsonschema

    jsonschema.validate(data, schema)
    return data


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory):
    """One local cloud for the session's stories on it, with the node image baked (tests/localcloud.py)."""
    import localcloud

    yield from localcloud.start(tmp_path_factory.mktemp("local-cloud"))
