"""Bad input fails with one message that names the fix, and creates nothing."""

import pytest
from conftest import isolated_env, provision, start_emulator, tagged_resources


@pytest.fixture(scope="module")
def empty_emulator(tmp_path_factory):
    """An emulator whose regions have no Debian image at all."""
    path = tmp_path_factory.mktemp("amis") / "none.json"
    path.write_text("[]")
    emu = start_emulator(path, path.parent / "moto.log")
    yield emu
    emu.stop()


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("Bad_Name", {}, 'Invalid cluster name "Bad_Name": use 1-32 lowercase letters, digits and dashes'),
        ("x" * 33, {}, "Invalid cluster name"),
        ("badregion", {"region": "mars"}, 'Invalid region "mars": pass an AWS region such as -e region=us-east-1'),
        ("badregion", {"region": "xx-fake-1"}, "Region 'xx-fake-1' could not be reached: check the name"),
        ("badami", {"ami": "ami-0000000000000dead"}, "AMI 'ami-0000000000000dead' does not exist in us-east-1"),
        ("badvol", {"volume_id": "vol-0000000000000dead"}, "Volume vol-0000000000000dead does not exist in us-east-1"),
        ("nokey", {"public_key_file": "/nonexistent/id.pub"}, "public_key_file '/nonexistent/id.pub' does not exist"),
        # HTTPS_PROXY points at a closed port, so the public IP look-up fails as it would offline.
        ("noip", {"ssh_cidr": ""}, "Could not find your public IP at https://checkip.amazonaws.com"),
        ("badzone", {"availability_zone": "us-east-1q"}, "The default VPC has no subnet in zone 'us-east-1q'"),
        # The guard's limits.
        ("badidle", {"idle_shutdown": -5}, 'Invalid idle_shutdown "-5": pass a whole number from 0 to 10080'),
        ("badttl", {"ttl": "8h"}, 'Invalid ttl "8h": pass the hours the cluster may run, a positive number'),
        ("badbudget", {"budget": "-3"}, 'Invalid budget "-3": pass the most the cluster may cost in USD'),
        ("shortttl", {"ttl": "0.5"}, "Invalid ttl 0.5: it is shorter than idle_shutdown (60 minutes), so pass"),
        ("noprice", {"budget": "5"}, "A budget needs the cluster's price: launch with awsc"),
        ("lowbudget", {"budget": "0.01", "cost_per_hour": "0.05"}, "Invalid budget 0.01: it is below the first hour's"),
        ("badlimit", {"on_limit": "reboot"}, "value of on_limit must be one of: terminate, stop, got: reboot"),
        (
            "spotstop",
            {"on_limit": "stop", "spot_max_price": "0.01"},
            "Spot workers cannot be stopped: pass -e on_limit",
        ),
    ],
)
def test_bad_input_names_the_fix_and_creates_nothing(ec2, env, name, extra, message):
    run = provision(env, name, check=False, **extra)
    assert run.rc != 0
    assert message in flat(run.out), run.out[-3000:]
    assert tagged_resources(ec2, name) == []


def test_volume_in_another_zone_is_refused(ec2, env):
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1b", Encrypted=True)["VolumeId"]
    run = provision(env, "otherzone", check=False, volume_id=volume, availability_zone="us-east-1a")
    assert run.rc != 0
    assert f"Volume {volume} is in zone us-east-1b but the cluster is in us-east-1a" in flat(run.out)
    assert "Drop -e availability_zone" in flat(run.out)
    assert tagged_resources(ec2, "otherzone") == []
    # Without a zone of its own, the cluster simply follows the volume.
    provision(env, "otherzone", workers=0, volume_id=volume)
    master = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": ["otherzone-master"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"][0]["Instances"][0]
    assert master["Placement"]["AvailabilityZone"] == "us-east-1b"


def test_missing_credentials_are_explained(emulator, tmp_path, ec2):
    env = isolated_env(tmp_path / "home", emulator.endpoint)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    run = provision(env, "nocreds", check=False)
    assert run.rc != 0
    assert "No valid AWS credentials: set AWS_PROFILE" in flat(run.out)
    assert tagged_resources(ec2, "nocreds") == []


def test_no_debian_ami_in_region(empty_emulator, tmp_path):
    env = isolated_env(tmp_path / "home", empty_emulator.endpoint)
    run = provision(env, "noami", check=False)
    assert run.rc != 0
    assert "No official Debian 12 AMI found in us-east-1: pass one with -e ami=ami-" in flat(run.out)
    assert tagged_resources(empty_emulator.client(), "noami") == []
