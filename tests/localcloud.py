"""The local cloud for the stories that run on it (test_local_cloud*.py): one local cloud for the
whole pytest session, through the real `awsc` command, and the helpers those stories share.

The session starts it once and bakes the node image `img` on it (`awsc image bake img --local`),
so the clusters of every story launch from the baked image as `awsc up` does by default (the
stock image's full install is Molecule's, from the same bare node image). Afterwards no
container, loop device, volume file or podman image of it is left.
"""

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from awsc.agent import detach_loops
from conftest import REPO, isolated_env

AWSC = str(Path(sys.executable).parent / "awsc")
IMAGE = "img"


@dataclass
class LocalCloud:
    env: dict[str, str]
    # What `awsc image bake` printed when the session baked IMAGE, and the image and its snapshot
    # as EC2 described them then (a restart of the local cloud registers the image again).
    baked: str
    image: dict
    snapshot: dict

    @property
    def state(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "awsc"

    def ec2(self):
        return self.client("ec2")

    def client(self, service: str):
        """A boto3 client of the local cloud's emulator."""
        port = (self.state / "local/emulator.port").read_text().strip()
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def volumes_dir(self) -> Path:
        return self.state / "local/volumes"

    def newest_run(self, cluster: str, verb: str) -> str:
        """The Ansible log of the newest `verb` run for `cluster` (or `_images`)."""
        runs = sorted((self.state / cluster / "runs").glob(f"*-{verb}"))
        return next(runs[-1].glob("artifacts/*/stdout")).read_text()


def our_containers() -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", "label=awsc.instance", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def podman_images(tries: int = 3) -> list[str]:
    """The local cloud's images. A listing can fail while the agent removes one of them (podman
    exit 125): asked again a second later."""
    for _ in range(tries):
        listed = subprocess.run(
            ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/awsc-ami"],
            capture_output=True,
            text=True,
        )
        if listed.returncode == 0:
            return listed.stdout.split()
        time.sleep(1)
    raise AssertionError(f"podman images failed {tries} times: {listed.stderr.strip()}")


def wait_until(check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {check.__doc__ or check}")


def run_awsc(env, *args, check=True, timeout=1200, input=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [AWSC, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, input=input
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"awsc {' '.join(args)} failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def awsc(env, *args, **kwargs) -> str:
    return run_awsc(env, *args, **kwargs).stdout


def instances(client, cluster: str) -> list[dict]:
    """The cluster's instances that are not terminated."""
    filters = [
        {"Name": "tag:awsc:cluster", "Values": [cluster]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    return [i for r in client.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]


def take_down(cloud: LocalCloud, *clusters: str) -> None:
    """A story's clusters gone, volumes too, even after a failed test."""
    for cluster in clusters:
        awsc(cloud.env, "down", cluster, "--local", "--delete-volume", "--yes", check=False)


def start(home: Path):
    """The session's local cloud with IMAGE baked on it (a generator for the fixture in conftest)."""
    # Containers of an earlier local cloud whose run was killed (a timed-out CI job) would take
    # this one's addresses: only the local cloud's agent makes containers with this label.
    for name in our_containers():
        print(f"removing {name}, left by an earlier local cloud")
        subprocess.run(["podman", "rm", "-f", name], check=False, capture_output=True)
    env = dict(isolated_env(home, None), CONTAINERS_CONF=str(REPO / "images/containers.conf"))
    images_before = set(podman_images())
    cloud = None
    try:
        awsc(env, "local", "start")
        baked = awsc(env, "image", "bake", IMAGE, "--local", timeout=1800)
        cloud = LocalCloud(env, baked, {}, {})
        client = cloud.ec2()
        [cloud.image] = client.describe_images(
            Owners=["self"], Filters=[{"Name": "tag:awsc:image", "Values": [IMAGE]}]
        )["Images"]
        snapshot_id = cloud.image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        [cloud.snapshot] = client.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        yield cloud
    finally:
        awsc(env, "local", "stop", check=False)
        for name in our_containers():
            subprocess.run(["podman", "rm", "-f", name], check=False)
        for image in set(podman_images()) - images_before:
            subprocess.run(["podman", "rmi", "-f", image], check=False)
        if cloud:
            for volume in cloud.volumes_dir().glob("*.img"):
                detach_loops(volume)
