"""The local EC2 API: moto's server, made to answer like EC2 where the playbooks rely on it.

Used by the tests, the benchmarks and the local cloud. Run in the foreground as
``python -m awsc.emulator -H 127.0.0.1 -p PORT`` (moto_server's arguments), or start one in the
background with :func:`start`. AMIs are seeded from ``MOTO_AMIS_PATH``.
"""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def _patch_moto() -> None:
    """Close the emulator gaps that differ from EC2 (not ones that merely simplify it)."""
    from moto.ec2.models import elastic_block_store

    # EC2 describes a volume made without a snapshot with SnapshotId "", moto leaves the key
    # out, and amazon.aws.ec2_vol_info then fails with KeyError 'snapshot_id'.
    original_init = elastic_block_store.Volume.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self.snapshot_id is None:
            self.snapshot_id = ""

    elastic_block_store.Volume.__init__ = init

    # moto gives every AMI a 15 GiB root snapshot. EC2's official Debian (and Ubuntu, Amazon
    # Linux) images have 8 GiB, and an image made from an instance has its root volume's size.
    from moto.ec2.models import amis

    original_ami_init = amis.Ami.__init__

    def ami_init(self, *args, **kwargs):
        original_ami_init(self, *args, **kwargs)
        size = 8
        instance = kwargs.get("instance")
        if instance is not None:
            root = instance.block_device_mapping.get(instance.root_device_name)
            size = getattr(root, "size", None) or size
            # The snapshot of an encrypted root volume is encrypted (moto leaves it plain).
            if root is not None and root.volume_id:
                self.ebs_snapshot.encrypted = bool(instance.ec2_backend.get_volume(root.volume_id).encrypted)
            # The local cloud's agent makes the image (podman commit) and then calls EnableImage:
            # until then it is pending, as on EC2 while the snapshot is taken.
            if os.environ.get("AWSC_EMULATOR_IMAGES") == "agent":
                self.state = "pending"
        self.ebs_snapshot.volume.size = int(size)
        # moto's RegisterImage keeps only the name and description (the local cloud's agent
        # registers kept images again with it); EC2 always reports an architecture.
        self.architecture = self.architecture or "x86_64"

    amis.Ami.__init__ = ami_init

    # CreateImage's TagSpecifications may tag the snapshot too (EC2 does; moto raises).
    original_create_image = amis.AmiBackend.create_image

    def create_image(self, instance_id, name, description, tag_specifications):
        image_specs = [s for s in tag_specifications if s["ResourceType"] != "snapshot"]
        snapshot_tags = [t for s in tag_specifications if s["ResourceType"] == "snapshot" for t in s["Tags"]]
        ami = original_create_image(self, instance_id, name, description, image_specs)
        for tag in snapshot_tags:
            ami.ebs_snapshot.add_tag(tag["Key"], tag["Value"])
        return ami

    amis.AmiBackend.create_image = create_image
    original_mappings = amis.Ami.block_device_mappings.fget

    def block_device_mappings(self):
        mappings = original_mappings(self)
        for mapping in mappings:
            mapping["Ebs"]["VolumeSize"] = self.ebs_snapshot.volume_size
        return mappings

    amis.Ami.block_device_mappings = property(block_device_mappings)

    # EC2 launches a spot instance when the launch template asks for the spot market; moto reads
    # the market only from RunInstances' own parameters.
    from moto.core.utils import utcnow
    from moto.ec2.models import instances

    original_run = instances.InstanceBackend.run_instances

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        if kwargs.get("launch_template") and not kwargs.get("instance_market_options"):
            data = self._get_template_from_args(kwargs["launch_template"]).data
            if data.get("InstanceMarketOptions"):
                kwargs["instance_market_options"] = data["InstanceMarketOptions"].get("MarketType", "spot")
        return original_run(self, image_id, count, user_data, security_group_names, **kwargs)

    instances.InstanceBackend.run_instances = run_instances

    # EC2 sets LaunchTime again whenever a stopped instance starts (moto keeps the first): the
    # local cloud's agent tells a node powered off since from one stopped before.
    original_start = instances.Instance.start

    def start(self):
        previous = original_start(self)
        if previous.name != "running":
            self.launch_time = utcnow()
        return previous

    instances.Instance.start = start

    # CreateLaunchTemplate's TagSpecifications tag the template; moto also copies them into the
    # first version's data, so the next run that sends the same data sees a difference and makes
    # a second version, which EC2 would not.
    from moto.ec2.models import launch_templates

    original_template_init = launch_templates.LaunchTemplate.__init__

    def template_init(self, backend, name, template_data, version_description, tag_spec):
        specs = [s for s in template_data.get("TagSpecifications", []) if s.get("ResourceType") != "launch-template"]
        template_data = {k: v for k, v in template_data.items() if k != "TagSpecifications"}
        if specs:
            template_data["TagSpecifications"] = specs
        original_template_init(self, backend, name, template_data, version_description, tag_spec)

    launch_templates.LaunchTemplate.__init__ = template_init


@dataclass
class Emulator:
    endpoint: str
    process: subprocess.Popen

    def client(self, service: str = "ec2", region: str = "us-east-1"):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, timeout: float = 30, process: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def start(amis: Path, log: Path, port: int | None = None, timeout: float = 30) -> Emulator:
    """Starts an emulator on 127.0.0.1 in the background and waits until it answers."""
    port = port or free_port()
    env = dict(os.environ, MOTO_AMIS_PATH=str(amis), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    process = subprocess.Popen(
        [sys.executable, "-m", "awsc.emulator", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    if wait_until_listening(port, timeout, process):
        return Emulator(f"http://127.0.0.1:{port}", process)
    process.kill()
    raise RuntimeError(f"the EC2 emulator did not start; see {log}")


def main(argv: list[str] | None = None) -> None:
    _patch_moto()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
