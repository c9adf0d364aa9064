"""The local cloud end to end: the EC2 emulator plus the node agent turn instances into systemd
containers, and the very same launch and terminate playbooks build a working Slurm cluster on
them. Only the endpoint and two settings differ from AWS: nodes are reached at their private
addresses (AWSC_CONNECT=private), and /home and /data are shared with sshfs (this kernel has no
NFS)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from awsc.emulator import start as start_emulator
from conftest import REPO, by_node, isolated_env, run_playbook, tagged_resources, tags

pytestmark = pytest.mark.slow
LOCAL_AMIS = REPO / "wrapper/awsc/data/local-amis.json"
CONTAINERS_CONF = str(REPO / "images/containers.conf")
# The cluster user of the common role and the shared file system for this kernel.
CONFIGURE = {"shared_fs_type": "sshfs", "ssh_cidr": "127.0.0.1/32", "shared_fs_paths": ["/home/awsc", "/data"]}


def our_containers() -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", "label=awsc.instance", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def wait_until(check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {check.__doc__ or check}")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """Emulator + node agent; afterwards no container, loop device or volume file is left."""
    assert not our_containers(), "containers of an earlier local cloud are still there"
    tmp = tmp_path_factory.mktemp("local")
    emulator = start_emulator(LOCAL_AMIS, tmp / "moto.log")
    state = tmp / "state"
    agent = subprocess.Popen(
        [sys.executable, "-m", "awsc.agent", "--endpoint", emulator.endpoint, "--state-dir", str(state)],
        env=dict(
            isolated_env(tmp / "agent-home", emulator.endpoint),
            CONTAINERS_CONF=CONTAINERS_CONF,
            PYTHONPATH=str(REPO / "wrapper"),
        ),
        stdout=(tmp / "agent.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    env = dict(isolated_env(tmp / "home", emulator.endpoint), AWSC_CONNECT="private")
    yield emulator, env, state
    run_playbook("playbooks/terminate.yml", env, check=False, name="e2e", delete_volume=True)
    try:
        wait_until(lambda: not our_containers(), timeout=60)
    finally:
        agent.terminate()
        agent.wait(20)
        emulator.stop()
        for name in our_containers():
            subprocess.run(["podman", "rm", "-f", name], check=False)
        for image in (state / "volumes").glob("*.img"):
            for line in subprocess.run(
                ["losetup", "-j", str(image)], capture_output=True, text=True
            ).stdout.splitlines():
                subprocess.run(["losetup", "-d", line.split(":", 1)[0]], check=False)


def on_node(env, host: str, command: str, user: str | None = None) -> str:
    """Runs a shell command on a node through Ansible (as root, or as `user`)."""
    args = [
        str(Path(sys.executable).parent / "ansible"),
        host,
        "-m",
        "ansible.builtin.shell",
        "-a",
        command,
        "-b",
        "-o",
    ]
    if user:
        args += ["--become-user", user]
    out = subprocess.run(args, cwd=REPO, env=dict(env, AWSC_CLUSTER="e2e"), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.split("(stdout)", 1)[-1].strip().replace("\\n", "\n")


def test_launch_runs_jobs_keeps_data_and_leaves_nothing(cloud):
    emulator, env, state = cloud
    ec2 = emulator.client()

    run_playbook("playbooks/launch.yml", env, name="e2e", workers=2, **CONFIGURE)
    nodes = by_node(ec2, "e2e")
    assert sorted(nodes) == ["master", "node001", "node002"]
    assert len(our_containers()) == 3

    # Slurm sees both workers idle, and a job runs across them.
    sinfo = on_node(env, "e2e-master", "sinfo --noheader -N -o '%N %t'")
    assert sorted(sinfo.splitlines()) == ["node001 idle", "node002 idle"], sinfo
    hosts = on_node(env, "e2e-master", "cd ~ && srun -N2 hostname", user="awsc")
    assert sorted(hosts.split()) == ["node001", "node002"]

    # /data lives on the volume and is shared with the workers.
    on_node(env, "e2e-master", "echo kept > /data/result.txt")
    assert on_node(env, "e2e-node002", "cat /data/result.txt") == "kept"

    # A second launch changes nothing.
    again = run_playbook("playbooks/launch.yml", env, name="e2e", workers=2, **CONFIGURE)
    assert again.changed == 0, again.out[-4000:]

    # Terminate keeps the volume (and its backing file); a new cluster finds the file again.
    volume_id = tags(nodes["master"])["awsc:data-volume"]
    run_playbook("playbooks/terminate.yml", env, name="e2e")
    wait_until(lambda: not our_containers())
    assert (state / "volumes" / f"{volume_id}.img").exists()
    run_playbook("playbooks/launch.yml", env, name="e2e", workers=1, volume_id=volume_id, **CONFIGURE)
    assert on_node(env, "e2e-master", "cat /data/result.txt") == "kept"

    # Terminate with delete_volume: no instance, volume, container or loop device is left.
    run_playbook("playbooks/terminate.yml", env, name="e2e", delete_volume=True)
    wait_until(lambda: not our_containers())
    assert tagged_resources(ec2, "e2e") == []
    wait_until(lambda: not list((state / "volumes").glob("*.img")))
    loops = json.loads(
        subprocess.run(["losetup", "-J"], capture_output=True, text=True).stdout or '{"loopdevices": []}'
    )
    assert not [d for d in loops["loopdevices"] if str(state) in d.get("back-file", "")]
