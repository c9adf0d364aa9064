"""The local cloud end to end, through the real `awsc` command: the EC2 emulator plus the node
agent turn instances into systemd containers, and the very same playbooks build a working Slurm
cluster on them. Only the endpoint and two settings differ from AWS: nodes are reached at their
private addresses, and /home/awsc and /data are shared with sshfs (this kernel has no NFS).

The tests below are one story on one cluster, in file order: each starts where the last ended.
Its launches take the session's baked image, as `awsc up` does by default."""

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO
from localcloud import AWSC, IMAGE, awsc, our_containers, podman_images, run_awsc, take_down, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(local_cloud):
    """The session's local cloud; cluster e2e is gone afterwards."""
    yield local_cloud
    take_down(local_cloud, "e2e")


@pytest.fixture(scope="module")
def env(cloud):
    return cloud.env


def on_master(env, command: str) -> str:
    """A command as the cluster user on the master, through `awsc ssh` (no --local: the cluster
    is remembered where `up` put it)."""
    return awsc(env, "ssh", "e2e", "--", f"sudo -iu awsc sh -c '{command}'", timeout=300)


def hints(output: str) -> list[str]:
    """The commands awsc told the user to type (between backticks)."""
    return re.findall(r"`(awsc [^`]+)`", output)


def typed(env, hint: str, input=None) -> subprocess.CompletedProcess:
    """A hint run exactly as printed."""
    return run_awsc(env, *shlex.split(hint)[1:], input=input)


def idle_workers(env) -> list[str]:
    sinfo = on_master(env, 'sinfo --noheader -N -o "%N %t"')
    return sorted(line.split()[0] for line in sinfo.splitlines() if line.split()[1] == "idle")


def instance_id(cloud, node: str) -> str | None:
    """The running instance of cluster e2e's `node`, asked of the local cloud's emulator."""
    filters = [
        {"Name": "tag:awsc:cluster", "Values": ["e2e"]},
        {"Name": "tag:awsc:node", "Values": [node]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    try:
        found = cloud.ec2().describe_instances(Filters=filters)["Reservations"]
    except Exception:  # the emulator is still starting
        return None
    return found[0]["Instances"][0]["InstanceId"] if found else None


def being_configured(container: str) -> bool:
    """True once configure has reached the node: the common role has written the cluster into its /etc/hosts."""
    probe = subprocess.run(["podman", "exec", container, "grep", "-q", "master", "/etc/hosts"], capture_output=True)
    return probe.returncode == 0


def test_a_worker_killed_mid_configure_leaves_the_others_configured_and_the_next_up_brings_it_in(cloud, env, tmp_path):
    # The first `up` loses node002 while it is being configured. The agent boots the container
    # again, as EC2 would reboot a crashed instance. (An install cut short by such a crash is
    # finished by the next configure: molecule/common proves it on dpkg's own states.)
    log = (tmp_path / "up.log").open("w")
    first = subprocess.Popen(
        [AWSC, "up", "e2e", "--local", "-n", "2", "--yes"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        container = None
        deadline = time.monotonic() + 900
        while first.poll() is None and time.monotonic() < deadline:
            if container is None and (iid := instance_id(cloud, "node002")):
                container = f"awsc-{iid}"
            if container and being_configured(container):
                subprocess.run(["podman", "kill", container], check=True, capture_output=True)
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"node002 was never configured by the first up:\n{(tmp_path / 'up.log').read_text()[-3000:]}")
        assert first.wait(timeout=900) != 0, "the first up cannot succeed without node002"
    finally:
        if first.poll() is None:
            first.kill()
    # The others went on without it: the run names node002, and node001 runs jobs meanwhile, with
    # node002 out of the scheduler.
    said = (tmp_path / "up.log").read_text()
    assert "Failed, and out of the scheduler until `awsc up e2e` converges them:\n  node002: “" in said, said
    assert "node001: “" not in said, said
    assert idle_workers(env) == ["node001"]
    assert "node002" not in on_master(env, 'sinfo --noheader -N -o "%N"')

    up = awsc(env, "up", "e2e", "--local", "-n", "2", "--yes")
    # Typed as printed, without --local: the hints reach the local cloud, where the cluster is.
    assert hints(up) == ["awsc ssh e2e", "awsc down e2e"], up
    # Free, with what it stands for on AWS beside it.
    assert "On the local cloud: free, nothing is billed (on AWS in us-east-1: $0.0" in up, up
    [row] = json.loads(awsc(env, "ls", "--local", "--json"))
    assert row["local"] is True and row["cost_per_hour"] == 0 and row["aws_cost_per_hour"] > 0
    assert "free (AWS $0.0" in awsc(env, "status", "e2e", "--no-scheduler")
    assert typed(env, "awsc ssh e2e", input="hostname\n").stdout.split()[-1] == "master"
    status = json.loads(awsc(env, "status", "e2e", "--json"))
    assert sorted(node["node"] for node in status["nodes"]) == ["master", "node001", "node002"]
    assert len(our_containers()) == 3

    # Slurm sees both workers idle; a batch job as the cluster user runs on both, its output
    # lands in the shared home and is read back on the master.
    assert idle_workers(env) == ["node001", "node002"]
    out = on_master(env, 'cd ~ && sbatch --wait -N2 -o e2e.out --wrap "srun hostname" >/dev/null && cat e2e.out')
    assert sorted(out.split()) == ["node001", "node002"]


def test_data_is_shared_the_agent_restarts_and_a_second_up_changes_nothing(cloud, env):
    # /data is on the volume and shared with the workers.
    on_master(env, "echo kept > /data/result.txt")
    assert awsc(env, "ssh", "e2e", "node002", "--local", "--", "cat /data/result.txt").strip() == "kept"

    # The agent keeps no state of its own: killed and started again, it finds every node as it was,
    # and reconciles again: the data volume's device, gone from the master while no agent ran,
    # is made again (the mounted file system does not notice).
    agent_pid = Path(env["XDG_STATE_HOME"]) / "awsc/local/agent.pid"
    old_agent = int(agent_pid.read_text())
    os.kill(old_agent, signal.SIGKILL)
    master = f"awsc-{instance_id(cloud, 'master')}"
    subprocess.run(["podman", "exec", master, "rm", "/dev/xvdf"], check=True)
    awsc(env, "local", "start")
    assert int(agent_pid.read_text()) != old_agent

    def device_back():
        """the master's /dev/xvdf made again"""
        return subprocess.run(["podman", "exec", master, "test", "-b", "/dev/xvdf"]).returncode == 0

    wait_until(device_back, timeout=60)
    assert len(our_containers()) == 3
    status = json.loads(awsc(env, "status", "e2e", "--local", "--json"))
    assert sorted(node["node"] for node in status["nodes"]) == ["master", "node001", "node002"]

    # awsc lists every step that changed something as "  + step".
    again = run_awsc(env, "up", "e2e", "--local", "-n", "2", "--yes")
    assert "\n  + " not in again.stdout + again.stderr, again.stderr


def test_add_node_then_remove_node(env):
    awsc(env, "add-node", "e2e", "--local", "--yes")
    assert len(our_containers()) == 4
    assert idle_workers(env) == ["node001", "node002", "node003"]
    out = on_master(env, 'cd ~ && sbatch --wait -N3 -o add.out --wrap "srun hostname" >/dev/null && cat add.out')
    assert sorted(out.split()) == ["node001", "node002", "node003"]
    assert awsc(env, "ssh", "e2e", "node003", "--local", "--", "cat /data/result.txt").strip() == "kept"

    removed = awsc(env, "remove-node", "e2e", "node003", "--local")
    assert "2 worker(s): node001, node002" in removed
    wait_until(lambda: len(our_containers()) == 3)
    assert idle_workers(env) == ["node001", "node002"]
    assert "node003" not in on_master(env, 'sinfo --noheader -N -o "%N"')


def test_a_node_showing_another_host_key_is_refused_until_trusted(cloud, env):
    # The master shows a host key other than the one awsc gave the cluster at launch, as a machine
    # in the way would (or a node rebuilt by hand).
    master = f"awsc-{instance_id(cloud, 'master')}"
    swap = "rm /etc/ssh/ssh_host_* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key"
    # The login user's sessions opened before (Ansible's ControlPersist ones) end too: each new one
    # meets the new key. The cluster user's (sshfs from the workers) stay.
    # (The image has no pkill: the sessions' sshd processes are found through /proc.)
    sessions = (
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null"
        " | grep -Eq '^sshd: admin(@| \\[priv\\])' && kill ${p#/proc/}; done; true"
    )
    subprocess.run(["podman", "exec", master, "sh", "-c", f"{swap} && systemctl restart ssh && {sessions}"], check=True)
    hint = "`awsc trust-node e2e master` accepts the key it shows now"

    refused = run_awsc(env, "ssh", "e2e", "--local", "--", "true", check=False)
    assert refused.returncode == 1 and hint in refused.stderr, refused.stderr
    # The playbooks refuse it too (strict checking in the inventory), and awsc says what to do.
    up = run_awsc(env, "up", "e2e", "--local", "-n", "2", "--yes", check=False)
    assert up.returncode == 1 and "Host key verification failed" in up.stderr and hint in up.stderr, up.stderr

    # The hint, typed as printed, accepts the new key; then logins and configure work again, and
    # configure gives the other nodes the master's new key (sshfs between nodes checks it too).
    command = hint.split("`")[1].split()
    awsc(env, *command[1:])
    assert awsc(env, "ssh", "e2e", "--local", "--", "echo in").strip() == "in"
    awsc(env, "up", "e2e", "--local", "-n", "2", "--yes")
    assert awsc(env, "ssh", "e2e", "node001", "--local", "--", "sudo -u awsc ssh master echo in").strip() == "in"


def test_ssh_config_lets_plain_ssh_reach_every_node(env, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(awsc(env, "ssh-config", "e2e"))
    for node in ("master", "node001", "node002"):
        plain = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", f"e2e-{node}", "hostname"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert plain.returncode == 0 and plain.stdout.strip() == node, plain.stderr


def test_down_keeps_the_volume_and_a_new_cluster_finds_its_data(cloud, env):
    # Written just before down, with no sync: terminate stops the master cleanly (flushing and
    # unmounting /data) before it detaches the volume. Here the loop device's writes land in this
    # machine's page cache whatever the order, so the check below cannot tell a clean stop from a
    # forced detach; on EC2 the order is what keeps the data.
    written = on_master(env, "head -c 1048576 /dev/urandom | tee /data/last.bin | sha256sum").split()[0]
    down = awsc(env, "down", "e2e", "--yes")
    reuse = [hint for hint in hints(down) if hint.startswith("awsc up")]
    assert len(reuse) == 1, down
    kept = [reuse[0].split()[-1]]
    wait_until(lambda: not our_containers())
    image = cloud.volumes_dir() / f"{kept[0]}.img"
    assert image.exists()
    # Read straight from the kept volume's file system, as another machine would see it.
    subprocess.run(["debugfs", "-R", f"dump /last.bin {image}.last", str(image)], capture_output=True, check=True)
    assert hashlib.sha256(Path(f"{image}.last").read_bytes()).hexdigest() == written
    Path(f"{image}.last").unlink()
    # The hint, typed as printed (a free local cluster asks nothing), brings the data back.
    typed(env, reuse[0])
    assert on_master(env, "cat /data/result.txt").strip() == "kept"
    assert on_master(env, "sha256sum /data/last.bin").split()[0] == written


def test_a_kept_volume_and_the_image_survive_a_restart_of_the_local_cloud(cloud, env):
    # The emulator keeps its state in memory; the agent makes the kept volume's file a volume
    # again, which `up` adopts by the cluster's name as it would on EC2, and registers the baked
    # image again (a new id, its podman image tagged with it), which `up` launches from.
    typed(env, "awsc down e2e", input="y\n")
    awsc(env, "local", "stop")
    assert not our_containers()
    awsc(env, "local", "start")
    wait_until(lambda: "vol-" in awsc(env, "volume", "ls", "--local"))
    client = cloud.ec2()
    tag = [{"Name": "tag:awsc:image", "Values": [IMAGE]}]
    wait_until(lambda: len(client.describe_images(Owners=["self"], Filters=tag)["Images"]) == 1, timeout=30)
    [image] = client.describe_images(Owners=["self"], Filters=tag)["Images"]
    assert f"localhost/awsc-ami:{image['ImageId']}" in podman_images()
    up = awsc(env, "up", "e2e", "-n", "1", "--yes")
    assert f"Image: {IMAGE} ({image['ImageId']})" in up
    assert on_master(env, "cat /data/result.txt").strip() == "kept"


def test_down_delete_volume_leaves_nothing(cloud, env):
    gone = awsc(env, "down", "e2e", "--local", "--delete-volume", "--yes")
    assert "nothing is left that bills" in gone
    wait_until(lambda: not our_containers())
    wait_until(lambda: not list(cloud.volumes_dir().glob("*.img")))
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(cloud.volumes_dir()) not in loops
