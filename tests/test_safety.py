"""The safety floor, tried as a hostile or careless user would, against the EC2 emulator.

A bystander world lives beside every case: an instance, a volume and a security group named like
awsc's that awsc never made, and a second awsc cluster. Bad input is refused by the playbooks (the
public interface) and by `awsc`, with one line naming the fix, and the world before is the world
after; destructive calls touch only what carries the cluster's tag.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from conftest import (
    CALLER_CIDR,
    VENV_BIN,
    by_node,
    instances,
    isolated_env,
    provision,
    run_playbook,
    tagged_resources,
    tags,
    terminate,
)
from test_bad_input import flat
from test_cli import awsc, cli_env, refused

ARM64_AMI = "ami-0d12cccccccccccc3"
SECRET = "awsc-test-secret-Zq81xKpW0"


def world(ec2) -> dict[str, set[str]]:
    """Everything in the region that exists (terminated instances and deleted volumes do not),
    and the account's IAM roles and instance profiles."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    )
    iam = boto3.client("iam", endpoint_url=ec2.meta.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    return {
        "instances": {i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]},
        "volumes": {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]},
        "groups": {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]},
        "keys": {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]},
        "roles": {r["RoleName"] for r in iam.list_roles()["Roles"]},
        "profiles": {p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]},
    }


@pytest.fixture(scope="module")
def senv(emulator, tmp_path_factory):
    return cli_env(tmp_path_factory.mktemp("home"), emulator.endpoint)


@pytest.fixture(scope="module")
def bystanders(ec2, senv):
    """What awsc never made, in the default subnet where a filterless call would reach it, and
    another awsc cluster; gone again after the module."""
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    instance = ec2.run_instances(
        ImageId="ami-0d12bbbbbbbbbbbb2", MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet["SubnetId"]
    )["Instances"][0]["InstanceId"]
    volume = ec2.create_volume(Size=1, AvailabilityZone=subnet["AvailabilityZone"])["VolumeId"]
    group = ec2.create_security_group(GroupName="awsc-ghost", Description="not awsc's", VpcId=subnet["VpcId"])
    group = group["GroupId"]
    provision(senv, "other", workers=1)
    yield {"instance": instance, "volume": volume, "group": group}
    terminate(senv, "other", delete_volume=True)
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.delete_volume(VolumeId=volume)
    ec2.delete_security_group(GroupId=group)


def assert_bystanders_alive(ec2, bystanders):
    now = world(ec2)
    assert bystanders["instance"] in now["instances"]
    assert bystanders["volume"] in now["volumes"]
    assert bystanders["group"] in now["groups"]
    assert sorted(by_node(ec2, "other")) == ["master", "node001"]


def start_awsc(env, *args, **kw) -> subprocess.Popen:
    """The installed `awsc`, started as a user would, with no answer on stdin."""
    return subprocess.Popen(
        [str(VENV_BIN / "awsc"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def run_awsc(env, *args, timeout=300) -> subprocess.CompletedProcess:
    proc = start_awsc(env, *args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


HOSTILE = [
    # (name, extra-vars, the message's words)
    ("neg", {"workers": -1}, 'Invalid workers "-1": pass a whole number from 0 to 1000, e.g. -e workers=2.'),
    ("neg", {"workers": "two"}, "Invalid settings: argument 'workers' is of type"),
    ("neg", {"workers": 1001}, 'Invalid workers "1001": pass a whole number from 0 to 1000'),
    ("neg", {"workers": "2.5"}, "Invalid settings: argument 'workers' is of type"),
    ("neg", {"ssh_cidr": "0.0.0.0/0"}, "would open SSH to the whole internet: pass your own address"),
    ("neg", {"ssh_cidr": "::/0"}, "ssh_cidr '::/0' would open SSH to the whole internet"),
    ("neg", {"ssh_cidr": "198.51.100.7/0"}, "ssh_cidr '198.51.100.7/0' has host bits set: the network is 0.0.0.0/0"),
    (
        "neg",
        {"ssh_cidr": "198.51.100.7/24"},
        "the network is 198.51.100.0/24; for the one address pass -e ssh_cidr=198.51.100.7/32.",
    ),
    ("neg", {"ssh_cidr": "999.1.1.1/99"}, "ssh_cidr '999.1.1.1/99' is not a valid IPv4 or IPv6 range"),
    ("neg", {"ssh_cidr": "not-a-cidr"}, "ssh_cidr 'not-a-cidr' is not an address range"),
    ("abc\n", {}, 'Invalid cluster name "abc\\n": use 1-32 lowercase letters'),
    ("-abc", {}, 'Invalid cluster name "-abc"'),
    ("abc-", {}, 'Invalid cluster name "abc-"'),
    ("neg", {"region": "us-east-1\n"}, 'Invalid region "us-east-1\\n"'),
    ("neg", {"volume_size": 0}, 'Invalid volume_size "0": pass a whole number from 1 to 16384'),
    ("neg", {"volume_size": -5}, 'Invalid volume_size "-5"'),
    ("neg", {"volume_size": 100000}, 'Invalid volume_size "100000"'),
    ("neg", {"root_volume_size": 0}, 'Invalid root_volume_size "0"'),
    ("neg", {"root_volume_size": 5}, "root_volume_size 5 GiB is smaller than the 8 GiB root snapshot of ami-"),
    ("neg", {"max_workers": -1}, 'Invalid max_workers "-1": pass a whole number from 0 to 1000, e.g. -e max_workers=8'),
    (
        "neg",
        {"workers": 2, "max_workers": 1},
        "Invalid max_workers 1: it counts the always-on workers too, so pass at least workers (2), e.g. -e max_workers",
    ),
    ("neg", {"max_workers": 4, "scheduler": "sge"}, "Elastic workers (max_workers above workers) need scheduler=slurm"),
    ("neg", {"max_workers": 4, "idle_minutes": 0}, 'Invalid idle_minutes "0": pass a whole number from 1 to 1440'),
    ("neg", {"max_workers": 4, "resume_timeout": 10}, 'Invalid resume_timeout "10": pass a whole number from 60'),
    ("neg", {"spot_max_price": "cheap"}, 'Invalid spot_max_price "cheap": pass the most you pay per worker-hour'),
    ("neg", {"spot_max_price": "-0.1"}, 'Invalid spot_max_price "-0.1"'),
    ("neg", {"spot_max_price": "0"}, 'Invalid spot_max_price "0"'),
    ("neg", {"scheduler": "pbs"}, "Invalid settings: value of scheduler must be one of: slurm, sge"),
    ("neg", {"master_instance_type": "t3.bogus"}, "Instance type 't3.bogus' does not exist in us-east-1"),
    ("neg", {"worker_instance_type": "x9.huge"}, "Instance type 'x9.huge' does not exist in us-east-1"),
    ("neg", {"ami": ARM64_AMI}, f"AMI {ARM64_AMI} is for arm64, but t3.micro is not"),
    # The emulator's offerings are EC2's: us-east-1a has no mac1.metal hosts.
    ("neg", {"worker_instance_type": "mac1.metal"}, "Instance type 'mac1.metal' is not offered in zone us-east-1a"),
]


# No "::" in an id: pytest-xdist would take it for the module's end and run the case apart, with
# its own bystanders.
@pytest.mark.parametrize(
    ("name", "extra", "message"), HOSTILE, ids=[flat(json.dumps(c[:2])).replace("::", ": :") for c in HOSTILE]
)
def test_hostile_input_to_the_playbook_is_refused_and_touches_nothing(ec2, senv, bystanders, name, extra, message):
    before = world(ec2)
    run = provision(senv, name, check=False, **({"ssh_cidr": CALLER_CIDR} | extra))
    assert run.rc != 0
    assert message in flat(run.out), run.out[-3000:]
    assert world(ec2) == before
    assert_bystanders_alive(ec2, bystanders)


# What awsc refuses itself, before any playbook: one line, exit code 1.
CLI_HOSTILE = [
    (["-n", "-1"], 'Invalid workers "-1": pass a whole number from 0 to 1000'),
    (["--volume-size", "0"], 'Invalid volume_size "0"'),
    (["--volume-size", "100000"], 'Invalid volume_size "100000"'),
    (["--spot-max-price", "cheap"], 'Invalid spot_max_price "cheap"'),
    (["--ssh-cidr", "0.0.0.0/0"], "would open SSH to the whole internet"),
    (["--ssh-cidr", "198.51.100.7/0"], "has host bits set: the network is 0.0.0.0/0"),
    (["--ssh-cidr", "999.1.1.1/99"], "is not a valid IPv4 or IPv6 range"),
    (["--master-type", "t3.bogus"], "Instance type 't3.bogus' does not exist in us-east-1"),
]


@pytest.mark.parametrize(("args", "message"), CLI_HOSTILE, ids=[" ".join(c[0]) for c in CLI_HOSTILE])
def test_hostile_options_to_awsc_are_one_line(ec2, senv, bystanders, args, message):
    before = world(ec2)
    line = refused(senv, "up", "neg", "--yes", "--provision-only", "--ssh-cidr", CALLER_CIDR, *args)
    assert message in line
    assert world(ec2) == before
    assert_bystanders_alive(ec2, bystanders)


@pytest.mark.parametrize("name", ["abc\n", "-abc"])
def test_hostile_names_to_awsc_are_one_line(senv, name):
    # A leading dash reaches awsc only after `--` (else it is an unknown option).
    assert "Invalid cluster name" in refused(senv, "up", "--yes", "--", name)


def test_a_template_with_negative_workers_is_refused(ec2, senv, bystanders, tmp_path):
    env = dict(senv, XDG_CONFIG_HOME=str(tmp_path / "config"))
    (tmp_path / "config" / "awsc").mkdir(parents=True)
    (tmp_path / "config" / "awsc" / "config.toml").write_text("[templates.neg]\nworkers = -1\n")
    before = world(ec2)
    assert 'Invalid workers "-1"' in refused(env, "up", "neg", "-t", "neg", "--yes", "--ssh-cidr", CALLER_CIDR)
    assert world(ec2) == before
    assert_bystanders_alive(ec2, bystanders)


def test_a_playbook_failure_after_the_checks_is_reported_by_awsc(ec2, senv, bystanders):
    """The checks only the playbook can make (the AMI's architecture) still fail awsc with exit 1."""
    before = world(ec2)
    result = awsc(senv, "up", "neg", "--yes", "--provision-only", "--ssh-cidr", CALLER_CIDR, "--ami", ARM64_AMI)
    assert result.exit_code == 1
    assert f"AMI {ARM64_AMI} is for arm64" in flat(result.stderr)
    assert world(ec2) == before


def test_ssh_from_anywhere_needs_its_own_flag_and_warns(ec2, senv, bystanders):
    run = provision(senv, "open", workers=0, ssh_cidr="0.0.0.0/0", ssh_from_anywhere=True)
    assert "WARNING: ssh_from_anywhere=true: the master accepts SSH from 0.0.0.0/0" in flat(run.out)
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["awsc-open"]}])["SecurityGroups"]
    ssh = [r for r in group[0]["IpPermissions"] if r.get("FromPort") == 22]
    assert [r["CidrIp"] for r in ssh[0]["IpRanges"]] == ["0.0.0.0/0"]
    terminate(senv, "open", delete_volume=True)
    assert_bystanders_alive(ec2, bystanders)


def test_an_ipv6_range_becomes_an_ipv6_rule(ec2, senv, bystanders):
    provision(senv, "six", workers=0, ssh_cidr="2001:db8::/64")
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["awsc-six"]}])["SecurityGroups"]
    ssh = [r for r in group[0]["IpPermissions"] if r.get("FromPort") == 22]
    assert [r["CidrIpv6"] for r in ssh[0]["Ipv6Ranges"]] == ["2001:db8::/64"]
    assert ssh[0]["IpRanges"] == []
    terminate(senv, "six", delete_volume=True)
    assert_bystanders_alive(ec2, bystanders)


def test_shrinking_and_removing_touch_only_the_cluster(ec2, senv, bystanders):
    provision(senv, "shrink", workers=3)
    before = world(ec2)
    # A node it does not have, and down to one: node002 and node003 go, nothing else.
    provision(senv, "shrink", workers=1, remove_nodes=["node009"])
    assert sorted(by_node(ec2, "shrink")) == ["master", "node001"]
    provision(senv, "shrink", workers=0, remove_nodes=["node001"])
    assert sorted(by_node(ec2, "shrink")) == ["master"]
    gone = before["instances"] - world(ec2)["instances"]
    assert len(gone) == 3
    assert_bystanders_alive(ec2, bystanders)
    terminate(senv, "shrink", delete_volume=True)
    assert_bystanders_alive(ec2, bystanders)


def test_terminating_a_cluster_that_does_not_exist_deletes_nothing(ec2, senv, bystanders):
    """Not even the security group named awsc-ghost that carries no awsc tag."""
    before = world(ec2)
    terminate(senv, "ghost", delete_volume=True)
    assert world(ec2) == before
    assert_bystanders_alive(ec2, bystanders)


def test_the_volume_playbook_deletes_only_awsc_volumes(ec2, senv, bystanders):
    run = run_playbook("playbooks/volume.yml", senv, check=False, state="absent", volume_id=bystanders["volume"])
    assert run.rc != 0
    assert f"Volume {bystanders['volume']} is not an awsc volume in us-east-1" in flat(run.out), run.out[-3000:]
    assert_bystanders_alive(ec2, bystanders)


# ---- one change at a time -----------------------------------------------------------------------


def test_a_second_command_waits_then_names_the_one_that_holds_the_cluster(ec2, senv, bystanders, tmp_path):
    env = dict(senv, AWSC_LOCK_WAIT="1")
    up = ("up", "conc", "--yes", "--provision-only", "-n", "1", "--ssh-cidr", CALLER_CIDR)
    first = start_awsc(env, *up, cwd=tmp_path)
    lock = Path(senv["XDG_STATE_HOME"]) / "awsc" / "conc" / "lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.1)
    second = run_awsc(env, *up, timeout=120)
    assert second.returncode == 1
    assert f"Cluster conc is being changed by `awsc up conc` (pid {first.pid}, since " in second.stderr
    assert "wait until it ends, then run this again." in second.stderr
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert sorted(by_node(ec2, "conc")) == ["master", "node001"]
    # Once the first has ended, the lock is free again.
    down = run_awsc(env, "down", "conc", "--yes", "--delete-volume")
    assert down.returncode == 0, down.stderr
    assert_bystanders_alive(ec2, bystanders)


# ---- no secret in any artifact ------------------------------------------------------------------


def files_holding(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode(errors="replace")
            found += [f"{path}: {needle[:12]}…" for needle in needles if needle in text]
    return found


@pytest.mark.parametrize("interrupts", [0, 1, 2, "kill"])
def test_no_secret_in_the_state_dir_after_a_run_ctrl_c_or_crash(emulator, ec2, tmp_path, interrupts):
    env = cli_env(tmp_path / "home", emulator.endpoint)
    env["AWS_SECRET_ACCESS_KEY"] = SECRET
    name = f"secret{interrupts}"
    up = ("up", name, "--yes", "--provision-only", "-n", "0", "--ssh-cidr", CALLER_CIDR)
    proc = start_awsc(env, *up, cwd=tmp_path, start_new_session=True)
    key = Path(env["XDG_CONFIG_HOME"]) / "awsc" / "keys" / f"{name}.pem"
    if interrupts:
        # Once the private key exists, the run is under way.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (key.exists() and key.stat().st_size > 0):
            time.sleep(0.1)
        if interrupts == "kill":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            for _ in range(interrupts):
                proc.send_signal(signal.SIGINT)
                time.sleep(0.3)
    proc.communicate(timeout=600)
    if interrupts == 0:
        assert proc.returncode == 0
    # The cluster's key and the nodes' host key (which travels in the user data) are in no log.
    keys = [key, key.with_name(f"{name}-host")]
    with_key = [line for path in keys if path.exists() for line in path.read_text().splitlines()[1:-1]]
    leaks = files_holding(Path(env["XDG_STATE_HOME"]), [SECRET, *with_key])
    assert leaks == []
    assert list(Path(env["XDG_STATE_HOME"]).rglob("command")), "the run's artifacts were written"
    run_awsc(env, "down", name, "--yes", "--delete-volume")


# ---- faults: throttling and lost responses ------------------------------------------------------

# 2 runs in the suite (each takes 2-3 minutes under the faults: the suite's biggest test);
# AWSC_FAULT_RUNS=10 for the full count, whose figures are in the note. One run meets both
# faults: the proxy's draws are seeded (tests/faults.py), and its first 40 calls hold 9 throttles
# and 6 lost answers.
FAULT_RUNS = int(os.environ.get("AWSC_FAULT_RUNS", "1"))


def test_provision_and_terminate_converge_under_throttling_and_lost_responses(emulator, ec2, tmp_path, bystanders):
    """20 % of calls throttled, 5 % served with the response lost: every run converges, no duplicate."""
    from faults import FaultyProxy

    with FaultyProxy(emulator.endpoint, throttle=0.2, drop=0.05) as proxy:
        env = isolated_env(tmp_path / "home", proxy.endpoint)
        converged, duplicates, twins = 0, [], []
        for run in range(FAULT_RUNS):
            name = f"fault{run}"
            out = provision(env, name, workers=2).out
            # A launch retried after its answer was lost made a twin; the run names and removes it.
            twins += re.findall(r"Removed (i-[0-9a-f]+(?:, i-[0-9a-f]+)*): \w+\(s\) launched a second time", flat(out))
            volumes = ec2.describe_volumes(
                Filters=[{"Name": "tag:awsc:cluster", "Values": [name]}, {"Name": "tag:awsc:role", "Values": ["data"]}]
            )["Volumes"]
            duplicates += [i["InstanceId"] for i in instances(ec2, name)][3:] + [v["VolumeId"] for v in volumes][1:]
            assert sorted(by_node(ec2, name)) == ["master", "node001", "node002"]
            terminate(env, name)
            left = tagged_resources(ec2, name)
            assert left == [volumes[0]["VolumeId"]], left
            ec2.delete_volume(VolumeId=volumes[0]["VolumeId"])
            converged += 1
    print(f"fault runs converged {converged}/{FAULT_RUNS}, duplicates left {duplicates}, twins removed {twins}")
    print(proxy.counts)
    assert duplicates == []
    assert proxy.counts.throttled > 0 and proxy.counts.dropped > 0
    assert_bystanders_alive(ec2, bystanders)


def test_a_lost_launch_answer_makes_a_twin_that_the_run_removes(emulator, ec2, tmp_path, bystanders):
    """The first answers to RunInstances and CreateVolume are lost: botocore's retry makes a second
    master and a second volume, which the run finds by the cluster's tag and removes."""
    from faults import FaultyProxy

    with FaultyProxy(emulator.endpoint, throttle=0, drop=0, drop_first=("RunInstances", "CreateVolume")) as proxy:
        run = provision(isolated_env(tmp_path / "home", proxy.endpoint), "twins", workers=1)
    assert proxy.counts.dropped_actions == ["RunInstances", "CreateVolume"]
    assert re.search(r"Removed i-[0-9a-f]+: master\(s\) launched a second time", flat(run.out)), run.out[-3000:]
    assert sorted(by_node(ec2, "twins")) == ["master", "node001"]
    volumes = ec2.describe_volumes(Filters=[{"Name": "tag:awsc:cluster", "Values": ["twins"]}])["Volumes"]
    assert len([v for v in volumes if tags(v).get("awsc:role") == "data"]) == 1
    assert terminate(isolated_env(tmp_path / "home", emulator.endpoint), "twins", delete_volume=True).rc == 0
    assert tagged_resources(ec2, "twins") == []
    assert_bystanders_alive(ec2, bystanders)
