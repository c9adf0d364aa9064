"""The node agent of the local cloud: it makes the EC2 emulator's instances and volumes real.

It polls the emulator and reconciles podman with it, as EC2's hypervisor and cloud-init would:
- a pending or running instance is a systemd container from the node image, on a podman network
  whose addresses are the VPC's, at the instance's private address;
- its key pair's public key is installed for the image's login user, and the host keys its
  cloud-config user data gives (`ssh_keys`) are the node's before sshd starts (what cloud-init does);
- stopping, starting and terminating the instance stop, start and remove the container; a node
  that powers itself off is stopped or terminated as its InstanceInitiatedShutdownBehavior says
  (EC2's hypervisor does the same), while a container that was killed or crashed boots again;
- a volume is a sparse file under the state folder, behind a loop device; attached, it appears in
  the instance's container at its attachment device (/dev/xvdf); deleted, file and loop go;
- CreateImage is `podman commit` of the instance's container to localhost/awsc-ami:AMI_ID, and an
  instance of that AMI starts from it. The emulator keeps such an image pending until the agent has
  committed it and calls EnableImage (its private signal: EC2 makes the image available itself);
  deregistered, the podman image goes;
- the EC2 API is relayed from the network's gateway to the emulator, so nodes reach it as
  instances reach EC2's endpoint (a master starts its elastic workers through it).

    python -m awsc.agent --endpoint http://127.0.0.1:PORT --state-dir DIR

The agent keeps no state of its own but the volume files: everything else is read again from
the emulator and podman on each pass, so restarting the agent loses nothing. Beside each volume
file it keeps the volume's size, zone and tags; when it starts and the emulator does not know a
volume (the emulator keeps its state in memory: `awsc local stop` loses it), it creates the volume
again with them, under the new id the emulator gives, so a kept /data volume is found again by its
cluster's name. Images are kept the same way: their description beside the podman image, registered
again under a new id (and the podman image tagged with it) when the emulator has forgotten them.
"""

import argparse
import base64
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LABEL = "awsc.instance"
NETWORK = "awsc-local"
# moto's default VPC: every default subnet is inside it.
VPC_CIDR = "172.31.0.0/16"
VPC_GATEWAY = "172.31.0.1"
IMAGE = "localhost/awsc-node:bookworm"
# Baked images: this repository, tagged with the AMI id.
AMI_REPOSITORY = "localhost/awsc-ami"
# The login user of the node image, as on Debian's AMIs.
LOGIN_USER = "admin"
LOOP_MAJOR = 7
# Linux's IP_FREEBIND (socket module lacks the name): bind to an address not (yet) on an interface.
IP_FREEBIND = 15
GIB = 1024**3
# How systemd ends in a container when told to stop (poweroff, or SIGRTMIN+3 from podman stop).
CLEAN_EXITS = (0, 130)
# What it takes to create a volume again (kept beside its file), besides its tags.
VOLUME_SETTINGS = ("Size", "AvailabilityZone", "Encrypted", "VolumeType")


def podman(*args: str, check: bool = True) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check).stdout


def detach_loops(image: Path) -> None:
    """Detaches every loop device backed by the volume file `image`."""
    attached = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout
    for line in attached.splitlines():
        subprocess.run(["losetup", "-d", line.split(":", 1)[0]], check=False)


def relay_api(port: int, address: str = VPC_GATEWAY) -> None:
    """The EC2 API where the nodes reach it (a master launches its elastic workers through it): a
    relay from the podman network's gateway (never 0.0.0.0) to the emulator on 127.0.0.1:`port`."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The bridge gets the gateway's address with its first container: bind before it exists.
    listener.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    listener.bind((address, port))
    listener.listen(32)

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while True:
            client, _ = listener.accept()
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True, name="api-relay").start()


def host_key_files(cloud_config: dict) -> dict[str, str]:
    """The host keys of a cloud-config (`ssh_keys`), by file name under /etc/ssh."""
    files = {}
    for entry, value in (cloud_config.get("ssh_keys") or {}).items():
        kind, _, half = entry.rpartition("_")  # ed25519_private, ed25519_public
        if half in ("private", "public"):
            files[f"ssh_host_{kind}_key" + (".pub" if half == "public" else "")] = value.strip() + "\n"
    return files


@dataclass
class Container:
    name: str
    running: bool
    exit_code: int | None = None
    exited_at: float = 0.0

    def powered_off_since(self, launch_time: float) -> bool:
        """systemd ended cleanly after the instance's last start: the node powered itself off, which
        EC2 turns into the instance's shutdown behaviour. (systemd exits 130 in a container, on
        poweroff as on `podman stop`; killed, or crashed, it does not: such a node boots again.)"""
        return not self.running and self.exit_code in CLEAN_EXITS and self.exited_at >= launch_time


class Agent:
    def __init__(self, ec2, state_dir: Path, image: str = IMAGE, network: str = NETWORK):
        self.ec2 = ec2
        self.image = image
        self.network = network
        self.volumes_dir = state_dir / "volumes"
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        self.images_dir = state_dir / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        # Volumes and images seen in the emulator during this agent's life: only those may be
        # deleted when they disappear (an emulator restarted empty must not cost anyone their data).
        self.seen_volumes: set[str] = set()
        self.seen_images: set[str] = set()

    # -- podman side -------------------------------------------------------------------------
    def ensure_network(self) -> None:
        if subprocess.run(["podman", "network", "exists", self.network]).returncode != 0:
            podman("network", "create", "--subnet", VPC_CIDR, "--gateway", VPC_GATEWAY, self.network)

    def containers(self) -> dict[str, Container]:
        listed = json.loads(podman("ps", "-a", "--filter", f"label={LABEL}", "--format", "json") or "[]")
        return {
            c["Labels"][LABEL]: Container(
                c["Names"][0],
                c["State"] == "running",
                c.get("ExitCode") if c["State"] == "exited" else None,
                float(c.get("ExitedAt") or 0),
            )
            for c in listed
            if c.get("Labels", {}).get(LABEL)
        }

    def create(self, instance: dict) -> None:
        iid = instance["InstanceId"]
        ip = instance["PrivateIpAddress"]
        name = f"awsc-{iid}"
        podman(
            "create", "--name", name, "--label", f"{LABEL}={iid}",
            "--hostname", "ip-" + ip.replace(".", "-"),
            "--network", self.network, "--ip", ip,
            # /etc/hosts and the host name belong to the node, as on EC2.
            "--no-hosts",
            "--systemd", "always",
            # As in the Molecule scenarios: systemd and Slurm's cgroup plugins need the cgroup
            # hierarchies writable, sshfs needs FUSE, volumes need block devices made inside.
            "--privileged",
            self.image_of(instance["ImageId"]), "/sbin/init",
        )  # fmt: skip
        config = self.cloud_config(iid)
        self.install_host_keys(name, host_key_files(config))
        podman("start", name)
        self.own_hostname(name)
        self.install_key(name, instance.get("KeyName"), config.get("ssh_authorized_keys") or [])

    def image_of(self, ami_id: str) -> str:
        """The podman image an instance of `ami_id` boots: its baked image, else the node image."""
        baked = f"{AMI_REPOSITORY}:{ami_id}"
        exists = subprocess.run(["podman", "image", "exists", baked], capture_output=True).returncode == 0
        return baked if exists else self.image

    def cloud_config(self, instance_id: str) -> dict:
        """The instance's cloud-config user data (empty for other user data)."""
        import yaml

        attribute = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        encoded = attribute.get("UserData", {}).get("Value")
        text = base64.b64decode(encoded).decode() if encoded else ""
        return (yaml.safe_load(text) or {}) if text.startswith("#cloud-config") else {}

    @staticmethod
    def install_host_keys(container: str, files: dict[str, str]) -> None:
        """Puts the host keys into the container before it boots: the image makes none then."""
        if not files:
            return
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644 if name.endswith(".pub") else 0o600
                tar.addfile(info, io.BytesIO(data))
        subprocess.run(
            ["podman", "cp", "-", f"{container}:/etc/ssh"], input=archive.getvalue(), check=True, capture_output=True
        )

    def shut_down(self, instance_id: str) -> None:
        """A node that powered itself off: stopped or terminated, as its launch asked (EC2's default: stop)."""
        found = self.ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )
        behaviour = found["InstanceInitiatedShutdownBehavior"]["Value"]
        if behaviour == "terminate":
            self.ec2.terminate_instances(InstanceIds=[instance_id])
        else:
            self.ec2.stop_instances(InstanceIds=[instance_id])
        print(f"awsc agent: {instance_id} powered itself off: {behaviour}", flush=True)

    def start(self, container: str) -> None:
        """Boots a stopped container again (a started or rebooted instance)."""
        podman("start", container)
        self.own_hostname(container)

    @staticmethod
    def own_hostname(container: str) -> None:
        """podman bind-mounts /etc/hostname on every start; EC2 nodes may rewrite theirs."""
        podman("exec", container, "umount", "/etc/hostname", check=False)

    def install_key(self, container: str, key_name: str | None, more: list[str]) -> None:
        """What cloud-init does: the key pair's public key and the user data's ssh_authorized_keys,
        for the login user with sudo."""
        keys = [k.strip() for k in more]
        if key_name:
            pairs = self.ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
            keys.insert(0, pairs[0].get("PublicKey", "").strip() if pairs else "")
        if not any(keys):
            return
        script = (
            f"id {LOGIN_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo {LOGIN_USER}\n"
            f"install -d -m 700 -o {LOGIN_USER} -g {LOGIN_USER} /home/{LOGIN_USER}/.ssh\n"
            f"cat > /home/{LOGIN_USER}/.ssh/authorized_keys\n"
            f"chown {LOGIN_USER}: /home/{LOGIN_USER}/.ssh/authorized_keys\n"
            f"chmod 600 /home/{LOGIN_USER}/.ssh/authorized_keys\n"
            f"echo '{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users\n"
        )
        subprocess.run(
            ["podman", "exec", "-i", container, "sh", "-c", script],
            input="".join(k + "\n" for k in keys if k),
            text=True,
            check=True,
            capture_output=True,
        )

    # -- volumes -----------------------------------------------------------------------------
    def loop_device(self, volume: dict) -> str:
        """The loop device behind a volume, made on first use (a sparse file of its size)."""
        path = self.volumes_dir / f"{volume['VolumeId']}.img"
        if not path.exists():
            with path.open("wb") as f:
                f.truncate(volume["Size"] * GIB)
        attached = subprocess.run(["losetup", "-j", str(path)], capture_output=True, text=True).stdout
        if attached:
            return attached.split(":", 1)[0]
        return subprocess.run(
            ["losetup", "-f", "--show", str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()

    def plug(self, container: str, device: str, loop: str) -> None:
        """Makes `device` in the container the loop device's block node (idempotent)."""
        minor = os.minor(os.stat(loop).st_rdev)
        script = (
            f'[ "$(stat -c %t:%T {device} 2>/dev/null)" = "{LOOP_MAJOR:x}:{minor:x}" ] && exit 0\n'
            f"rm -f {device}; mknod {device} b {LOOP_MAJOR} {minor}\n"
        )
        podman("exec", container, "sh", "-c", script)

    def forget(self, volume_id: str) -> None:
        path = self.volumes_dir / f"{volume_id}.img"
        detach_loops(path)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def describe(self, volume: dict) -> None:
        """Keeps what it takes to create the volume again beside its file."""
        keep = {k: volume.get(k) for k in (*VOLUME_SETTINGS, "Tags")}
        path = self.volumes_dir / f"{volume['VolumeId']}.json"
        text = json.dumps(keep, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)

    def restore(self) -> list[str]:
        """Volume files the emulator does not know become volumes again (new ids); returns them."""
        known = {v["VolumeId"] for v in self.ec2.describe_volumes()["Volumes"]}
        restored = []
        for described in sorted(self.volumes_dir.glob("vol-*.json")):
            image = described.with_suffix(".img")
            if described.stem in known or not image.exists():
                continue
            keep = json.loads(described.read_text())
            args = {k: keep[k] for k in VOLUME_SETTINGS if keep.get(k)}
            if keep.get("Tags"):
                args["TagSpecifications"] = [{"ResourceType": "volume", "Tags": keep["Tags"]}]
            volume_id = self.ec2.create_volume(**args)["VolumeId"]
            image.rename(self.volumes_dir / f"{volume_id}.img")
            described.rename(self.volumes_dir / f"{volume_id}.json")
            restored.append(f"{described.stem} -> {volume_id}")
        return restored

    # -- images ------------------------------------------------------------------------------
    def reconcile_images(self, containers: dict[str, Container]) -> None:
        images = self.ec2.describe_images(Owners=["self"])["Images"]
        present = {i["ImageId"] for i in images}
        for ami_id in self.seen_images - present:
            podman("rmi", f"{AMI_REPOSITORY}:{ami_id}", check=False)
            (self.images_dir / f"{ami_id}.json").unlink(missing_ok=True)
        self.seen_images = present
        for image in images:
            container = containers.get(image.get("SourceInstanceId", ""))
            if image["State"] != "pending" or container is None:
                continue
            # The builder's label would mark every container of the image as that (gone) instance's.
            podman(
                "commit", "--quiet", "--change", f"LABEL {LABEL}=", container.name,
                f"{AMI_REPOSITORY}:{image['ImageId']}",
            )  # fmt: skip
            keep = {k: image.get(k) for k in ("Name", "Description", "Tags")}
            (self.images_dir / f"{image['ImageId']}.json").write_text(json.dumps(keep, sort_keys=True))
            self.ec2.enable_image(ImageId=image["ImageId"])
            print(f"awsc agent: image {image['ImageId']} committed from {container.name}", flush=True)

    def restore_images(self) -> list[str]:
        """Kept images the emulator does not know are registered again (new ids); returns them."""
        known = {i["ImageId"] for i in self.ec2.describe_images(Owners=["self"])["Images"]}
        restored = []
        for described in sorted(self.images_dir.glob("ami-*.json")):
            old = f"{AMI_REPOSITORY}:{described.stem}"
            if described.stem in known or subprocess.run(["podman", "image", "exists", old]).returncode != 0:
                continue
            keep = json.loads(described.read_text())
            ami_id = self.ec2.register_image(Name=keep["Name"], Description=keep.get("Description") or "")["ImageId"]
            if keep.get("Tags"):
                self.ec2.create_tags(Resources=[ami_id], Tags=keep["Tags"])
            podman("tag", old, f"{AMI_REPOSITORY}:{ami_id}")
            podman("untag", old, old)
            described.rename(self.images_dir / f"{ami_id}.json")
            restored.append(f"{described.stem} -> {ami_id}")
        return restored

    # -- the reconcile pass ------------------------------------------------------------------
    def reconcile(self) -> None:
        self.ensure_network()
        pages = self.ec2.get_paginator("describe_instances").paginate()
        instances = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
        containers = self.containers()
        known = set()
        for instance in instances:
            iid, state = instance["InstanceId"], instance["State"]["Name"]
            container = containers.get(iid)
            if state in ("pending", "running"):
                known.add(iid)
                if container is None:
                    self.create(instance)
                elif state == "running" and container.powered_off_since(instance["LaunchTime"].timestamp()):
                    self.shut_down(iid)
                elif not container.running:
                    self.start(container.name)
            elif state in ("stopping", "stopped"):
                known.add(iid)
                if container and container.running:
                    podman("stop", "--time", "10", container.name)
        # Before a terminated builder's container goes: its image may be waiting for it.
        self.reconcile_images(containers)
        for iid, container in containers.items():
            if iid not in known:
                podman("rm", "--force", container.name)
        running = [i for i in instances if i["State"]["Name"] == "running"]
        self.reconcile_volumes(running)

    def reconcile_volumes(self, running: list[dict]) -> None:
        volumes = self.ec2.describe_volumes()["Volumes"]
        present = {v["VolumeId"] for v in volumes}
        for volume_id in self.seen_volumes - present:
            self.forget(volume_id)
        self.seen_volumes = present
        by_id = {v["VolumeId"]: v for v in volumes}
        for volume in volumes:
            if (self.volumes_dir / f"{volume['VolumeId']}.img").exists():
                self.describe(volume)
        for instance in running:
            # The first mapping is the root volume: the container's own file system.
            for mapping in instance["BlockDeviceMappings"][1:]:
                volume = by_id.get(mapping["Ebs"]["VolumeId"])
                if volume:
                    self.plug(f"awsc-{instance['InstanceId']}", mapping["DeviceName"], self.loop_device(volume))

    def run(self, interval: float = 1.0) -> None:
        stop = False

        def finish(*_):
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, finish)
        signal.signal(signal.SIGINT, finish)
        for restored in self.restore():
            print(f"awsc agent: volume {restored} restored from its file", flush=True)
        for restored in self.restore_images():
            print(f"awsc agent: image {restored} registered again", flush=True)
        while not stop:
            try:
                self.reconcile()
            except (subprocess.CalledProcessError, OSError) as error:
                print(f"awsc agent: {error}", flush=True)
            time.sleep(interval)


def main(argv: list[str] | None = None) -> None:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the EC2 emulator, e.g. http://127.0.0.1:5000")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--image", default=IMAGE)
    parser.add_argument("--network", default=NETWORK)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    ec2 = boto3.client(
        "ec2",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    relay_api(int(args.endpoint.rsplit(":", 1)[1]))
    Agent(ec2, args.state_dir, args.image, args.network).run(args.interval)


if __name__ == "__main__":
    main()
