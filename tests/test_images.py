"""Baked images against the EC2 emulator: provision picks the image that matches the roles, the
stock Debian AMI when there is none, and refuses an image that does not exist before creating
anything; remove_image.yml deregisters the image and deletes its snapshot, and nothing else.
(Baking itself needs a builder that runs: tests/test_local_cloud_images.py.)"""

import json

import pytest
from awsc import config
from conftest import NEWEST_DEBIAN_AMI, instances, provision, run_playbook, tagged_resources, tags, terminate


def image_from(ec2, name: str, digest: str) -> str:
    """An image tagged as a bake makes it, from a short-lived instance of the stock AMI."""
    instance = ec2.run_instances(ImageId=NEWEST_DEBIAN_AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(
        InstanceId=instance,
        Name=f"awsc-{name}-{digest}",
        TagSpecifications=[
            {
                "ResourceType": "image",
                "Tags": [{"Key": "awsc:image", "Value": name}, {"Key": "awsc:digest", "Value": digest}],
            }
        ],
    )["ImageId"]
    ec2.terminate_instances(InstanceIds=[instance])
    return image


@pytest.fixture
def images(ec2):
    """Deregisters every awsc image a test made, so other tests launch from the stock AMI."""
    yield
    for image in ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag-key", "Values": ["awsc:image"]}])[
        "Images"
    ]:
        ec2.deregister_image(ImageId=image["ImageId"])


def test_provision_picks_the_matching_image_else_the_stock_one(ec2, env, images):
    # With no image, the stock one: every test of test_provision.py launches from NEWEST_DEBIAN_AMI.
    matching = image_from(ec2, "img", config.image_digest({}))
    image_from(ec2, "old", "0000000000000000")
    run = provision(env, "baked", workers=1)
    assert "Baked image img" in run.out
    nodes = instances(ec2, "baked")
    assert {i["ImageId"] for i in nodes} == {matching}
    assert {tags(i)["awsc:image"] for i in nodes} == {"img"}

    # Named, an image of other roles is used, with a warning.
    other = provision(env, "named", workers=0, image="old")
    assert "configure installs the difference" in other.out
    assert {tags(i)["awsc:image"] for i in instances(ec2, "named")} == {"old"}
    for name in ("baked", "named"):
        terminate(env, name, delete_volume=True)


@pytest.mark.parametrize("image", ["nope", "ami-0123456789abcdef0"])
def test_an_image_that_does_not_exist_fails_before_anything_is_created(ec2, env, image):
    run = provision(env, "noimg", check=False, image=image)
    assert run.rc != 0
    assert f"Image '{image}' does not exist in us-east-1" in run.out
    assert tagged_resources(ec2, "noimg") == []


def test_remove_image_deregisters_it_and_deletes_its_snapshot_and_nothing_else(ec2, env, images):
    doomed = image_from(ec2, "gone", "1111111111111111")
    kept = image_from(ec2, "kept", "1111111111111111")
    snapshots = [
        m["Ebs"]["SnapshotId"] for m in ec2.describe_images(ImageIds=[doomed])["Images"][0]["BlockDeviceMappings"]
    ]
    untagged = ec2.run_instances(ImageId=NEWEST_DEBIAN_AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    bystander = ec2.create_image(InstanceId=untagged, Name="someone-elses")["ImageId"]

    run_playbook("playbooks/remove_image.yml", env, image="gone")

    left = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert doomed not in left
    assert {kept, bystander} <= left
    assert not [s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["SnapshotId"] in snapshots]
    missing = run_playbook("playbooks/remove_image.yml", env, check=False, image="gone")
    assert missing.rc != 0 and "No awsc image 'gone'" in missing.out
    ec2.deregister_image(ImageId=bystander)
    ec2.terminate_instances(InstanceIds=[untagged])


def test_awsc_lists_images_counts_them_in_ls_and_down_and_refuses_unknown_ones(ec2, emulator, tmp_path, images):
    from awsc import schemas
    from conftest import valid
    from test_cli import cli_env, ok, refused

    env = cli_env(tmp_path / "home", emulator.endpoint)
    assert refused(env, "up", "noimg", "--image", "nope", "--ssh-cidr", "198.51.100.7/32", "--yes") == (
        "awsc: No awsc image 'nope' in us-east-1: `awsc image ls` lists them, `awsc image bake nope` makes it."
    )
    assert tagged_resources(ec2, "noimg") == []
    assert refused(env, "image", "rm", "nope") == "awsc: No awsc image 'nope' in us-east-1: `awsc image ls` lists them."

    matching = image_from(ec2, "img", config.image_digest({}))
    image_from(ec2, "old", "0000000000000000")
    rows = valid(json.loads(ok(env, "image", "ls", "--json").stdout), schemas.IMAGES)
    assert sorted((r["name"], r["matches"]) for r in rows) == [("img", True), ("old", False)]
    assert all(r["snapshot_gib"] == 8 and r["per_month"] > 0 for r in rows)

    up = ok(env, "up", "withimg", "-n", "0", "--ssh-cidr", "198.51.100.7/32", "--provision-only", "--yes")
    assert f"Image: img ({matching}): nothing to install" in up.stdout + up.stderr
    assert "awsc images: 2, 16 GiB of snapshots" in ok(env, "ls").stdout
    down = valid(json.loads(ok(env, "down", "withimg", "--delete-volume", "--yes", "--json").stdout), schemas.DOWN)
    assert down["images"]["count"] == 2 and down["images"]["snapshot_gib"] == 16
