#!/usr/bin/env python3
"""Time playbooks/configure.yml on local node containers: 1 master + N workers from the bare node
image, over SSH as on EC2 (pipelining, ControlPersist from ansible.cfg), sshfs as the shared
filesystem. For each N: a first run (everything installed and configured) and a second, no-change
run whose recap must say changed=0. Prints figures; not a test.

    python bench/configure.py                 # N = 2, 4, 6
    python bench/configure.py --workers 2 --keep
    python bench/configure.py --workers 2 --image localhost/awsc-ami:ami-... --anchor
        # from a baked image (`awsc image bake --local`; the runtimes on, as a baked cluster has
        # them), against galaxyproject.slurm's first converge from the bare image in the same run

Needs root, podman + runc, the image (make image) and ansible-playbook on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("AWSC_NODE_IMAGE", "localhost/awsc-node:bookworm")
PREFIX = "awsc-bench"
NETWORK = f"{PREFIX}-net"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def podman(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=check, text=True, capture_output=True, **kwargs)


def node_names(workers: int) -> list[str]:
    return ["master"] + [f"node{i:03d}" for i in range(1, workers + 1)]


def cleanup() -> None:
    names = podman("ps", "-a", "--filter", "label=awsc-bench", "--format", "{{.Names}}").stdout.split()
    if names:
        podman("rm", "-f", "-t", "0", *names, check=False)
    podman("network", "rm", "-f", NETWORK, check=False)


def start_nodes(workers: int, pubkey: str, image: str = IMAGE) -> dict[str, str]:
    """Start the containers like cloud-init would leave instances: sshd up, our key for root."""
    podman("network", "create", NETWORK)
    names = node_names(workers)
    for name in names:
        podman(
            "run", "-d", "--name", f"{PREFIX}-{name}", "--hostname", name, "--label", "awsc-bench",
            "--network", NETWORK, "--no-hosts", "--privileged", "--systemd=always", image, "/sbin/init",
        )  # fmt: skip
    addresses = {}
    for name in names:
        container = f"{PREFIX}-{name}"
        info = json.loads(podman("container", "inspect", container).stdout)[0]
        addresses[name] = info["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        podman(
            "exec", "-i", container, "sh", "-c",
            "install -d -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys"
            " && chmod 600 /root/.ssh/authorized_keys",
            input=pubkey,
        )  # fmt: skip
    return addresses


def known_hosts(addresses: dict[str, str], path: Path, timeout: float = 60) -> None:
    """Each node's host key, read through podman (a channel no one sits in), for strict checking."""
    deadline = time.monotonic() + timeout
    lines = []
    for name, address in addresses.items():
        read = ("exec", f"{PREFIX}-{name}", "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
        while (key := podman(*read, check=False)).returncode:
            if time.monotonic() > deadline:
                sys.exit(f"bench: {name} made no host key")
            time.sleep(0.5)
        lines.append(f"{address} {' '.join(key.stdout.split()[:2])}")
    path.write_text("\n".join(lines) + "\n")


def ssh_options(key: Path, known: Path) -> list[str]:
    return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}", "-i", str(key)]


def wait_for_ssh(addresses: dict[str, str], key: Path, known: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for address in addresses.values():
        while True:
            probe = subprocess.run(
                ["ssh", *ssh_options(key, known), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
                 f"root@{address}", "true"],
                capture_output=True,
            )  # fmt: skip
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                sys.exit(f"bench: no SSH on {address}")
            time.sleep(0.5)


def write_inventory(path: Path, addresses: dict[str, str], key: Path, known: Path) -> None:
    def host(name: str) -> dict:
        return {"ansible_host": addresses[name], "awsc_node_name": name}

    inventory = {
        "all": {
            # As inventory/aws_ec2.yml sets them.
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(key),
                "ansible_ssh_common_args": shlex.join(ssh_options(key, known)[:4]),
                "ansible_python_interpreter": "/usr/bin/python3",
            },
            "children": {
                "master": {"hosts": {f"{PREFIX}-master": host("master")}},
                "workers": {"hosts": {f"{PREFIX}-{n}": host(n) for n in addresses if n != "master"}},
            },
        }
    }
    path.write_text(json.dumps(inventory, indent=1))


def run_configure(inventory: Path, env: dict[str, str], log: Path, baked: bool) -> tuple[float, dict[str, int]]:
    command = [
        "ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "configure.yml"),
        "-e", "shared_fs_type=sshfs",
        # The bare image has no runtimes (minutes of apt); a baked one has them, Julia aside.
        "-e", json.dumps({"configure_runtimes": baked, "runtimes_julia": False}),
    ]  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, text=True, capture_output=True)
    elapsed = time.monotonic() - start
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"bench: configure failed (rc {result.returncode}), see {log}")
    changed = {m[0]: int(m[2]) for m in RECAP.findall(result.stdout)}
    return elapsed, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--keep", action="store_true", help="leave the last cluster running")
    parser.add_argument("--image", default=IMAGE, help="the nodes' podman image (default: the bare node image)")
    parser.add_argument("--anchor", action="store_true", help="also run galaxyproject.slurm from the bare image")
    args = parser.parse_args()
    baked = args.image != IMAGE

    for image in {IMAGE, args.image}:
        if podman("image", "exists", image, check=False).returncode != 0:
            sys.exit(f"bench: image {image} missing (make image; awsc image bake --local)")
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "images" / "containers.conf"))

    rows = []
    # Kept afterwards: the playbook logs are there.
    work = Path(tempfile.mkdtemp(prefix="awsc-bench-"))
    print(f"bench: logs in {work}", flush=True)
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(work / "ansible"),
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "ANSIBLE_NOCOLOR": "1",
    }

    def nodes(n: int, image: str) -> Path:
        addresses = start_nodes(n, (work / "id_ed25519.pub").read_text(), image)
        known = work / f"known_hosts-{n}"
        known_hosts(addresses, known)
        wait_for_ssh(addresses, key, known)
        inventory = work / f"inventory-{n}.json"
        write_inventory(inventory, addresses, key, known)
        return inventory

    for n in args.workers:
        cleanup()
        try:
            inventory = nodes(n, args.image)
            first, _ = run_configure(inventory, env, work / f"first-{n}.log", baked)
            second, changed = run_configure(inventory, env, work / f"second-{n}.log", baked)
            rows.append((n, first, second, sum(changed.values())))
            print(f"1+{n}{' from ' + args.image if baked else ''}: configure {first:6.1f} s, "
                  f"no-change re-run {second:5.1f} s (changed={sum(changed.values())})", flush=True)  # fmt: skip
            if args.anchor:
                cleanup()
                anchor = ROOT.parent / "shared" / "anchors" / "run-galaxy-slurm"
                seconds = float(subprocess.run(
                    [str(anchor), str(nodes(n, IMAGE))], env=env, text=True, capture_output=True, check=True,
                ).stdout.split()[-1])  # fmt: skip
                print(f"1+{n}: galaxyproject.slurm from the bare image {seconds:.1f} s; "
                      f"ours {first / seconds:.2f}x of it", flush=True)  # fmt: skip
        finally:
            if not (args.keep and n == args.workers[-1]):
                cleanup()

    print("\nworkers  configure  re-run  changed")
    for n, first, second, changed in rows:
        print(f"{n:7d}  {first:8.1f}s  {second:5.1f}s  {changed:7d}")
    if any(row[3] for row in rows):
        sys.exit("bench: a re-run changed something")


if __name__ == "__main__":
    main()
