"""Elastic workers on the local cloud, through `awsc`: a master alone, whose Slurm starts workers
for waiting jobs and ends them when idle. The master launches them itself through the EC2 API (the
agent's relay on the podman network's gateway), from the session's baked image, and configures
them with the same playbook and roles; the agent makes the containers, as EC2 would the instances.

One story in file order, on the session's local cloud."""

import json
import subprocess
import time

import pytest
from localcloud import awsc, instances, our_containers, run_awsc, take_down, wait_until

pytestmark = pytest.mark.slow
NODES = ["node001", "node002", "node003"]


@pytest.fixture(scope="module")
def cloud(local_cloud):
    """The session's local cloud; cluster el is gone afterwards."""
    yield local_cloud
    take_down(local_cloud, "el")


@pytest.fixture(scope="module")
def env(cloud):
    return cloud.env


def on_master(env, command: str, timeout: int = 300) -> str:
    return awsc(env, "ssh", "el", "--", command, timeout=timeout)


def slurm_states(env) -> dict[str, str]:
    """Each node's compact Slurm state (idle~: powered down, idle#: powering up)."""
    listed = on_master(env, "sinfo -h -N -o '%N %t'")
    return dict(line.split() for line in listed.splitlines() if line.strip())


def workers(cloud) -> dict[str, dict]:
    """The elastic workers' instances that exist, by node."""
    found = instances(cloud.ec2(), "el")
    tags = [{t["Key"]: t["Value"] for t in i.get("Tags", [])} for i in found]
    return {t.get("awsc:node", i["InstanceId"]): i for t, i in zip(tags, found, strict=True) if t.get("awsc:elastic")}


def test_an_elastic_cluster_starts_with_its_workers_powered_down(cloud, env):
    run_awsc(env, "up", "el", "--local", "-n", "0", "--max-workers", "3", "--idle-minutes", "1", "--yes", timeout=900)
    assert slurm_states(env) == dict.fromkeys(NODES, "idle~")
    assert workers(cloud) == {}
    assert len(our_containers()) == 1
    status = json.loads(awsc(env, "status", "el", "--json"))
    assert [(n["node"], n["power"]) for n in status["scheduler"]["nodes"]] == [(n, "powered down") for n in NODES]


def test_a_waiting_job_starts_two_workers_that_run_it(cloud, env):
    started = time.monotonic()
    job = 'sbatch --wait -N2 -o el.out --wrap "srun hostname" >/dev/null && cat el.out'
    out = on_master(env, f"sudo -iu awsc sh -c '{job}'")
    print(f"sbatch -N2 to its end on two powered-down nodes: {time.monotonic() - started:.0f} s")
    assert sorted(out.split()) == ["node001", "node002"]
    launched = workers(cloud)
    assert sorted(launched) == ["node001", "node002"]
    for node, instance in launched.items():
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert (tags["Name"], tags["awsc:role"], tags["awsc:cluster"]) == (f"el-{node}", "worker", "el")
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert len(our_containers()) == 3


def test_idle_workers_end_and_are_powered_down_again(cloud, env):
    wait_until(lambda: workers(cloud) == {}, timeout=300)
    wait_until(lambda: len(our_containers()) == 1, timeout=60)
    # Powering down (idle%) for SuspendTimeout, then powered down.
    wait_until(lambda: slurm_states(env) == dict.fromkeys(NODES, "idle~"), timeout=180)


def test_a_node_lost_while_it_is_configured_goes_down_with_its_reason_and_the_job_runs_on_another(cloud, env):
    master = f"awsc-{instances(cloud.ec2(), 'el')[0]['InstanceId']}"
    on_master(env, "sudo -iu awsc sbatch -N1 -o lost.out --wrap hostname")

    def configuring() -> bool:
        """the master configuring the node it started"""
        probe = subprocess.run(["podman", "exec", master, "pgrep", "-f", "ansible.cli.playbook"], capture_output=True)
        return probe.returncode == 0

    wait_until(configuring, timeout=180)
    [(node, instance)] = workers(cloud).items()
    time.sleep(3)
    subprocess.run(["podman", "kill", f"awsc-{instance['InstanceId']}"], check=True, capture_output=True)

    def reason_shown() -> bool:
        """the lost node down with awsc's reason"""
        listed = on_master(env, "sinfo -h -N -o '%N|%t|%E'")
        return any(line.startswith(f"{node}|") and "down" in line and "awsc: " in line for line in listed.splitlines())

    wait_until(reason_shown, timeout=300)
    # Requeued and run on another node; nothing of the lost node bills.
    wait_until(lambda: on_master(env, "cat ~awsc/lost.out 2>/dev/null || true").strip() not in ("", node), timeout=400)
    assert node not in workers(cloud)
    # Back in service: powered down, to be started again when a job needs it.
    wait_until(lambda: slurm_states(env)[node] == "idle~", timeout=180)


def test_a_worker_whose_controller_is_gone_powers_itself_off(cloud, env):
    on_master(env, "sudo -iu awsc sbatch -N1 --wrap 'sleep 900'")
    wait_until(lambda: "alloc" in slurm_states(env).values(), timeout=300)
    [node] = [n for n, state in slurm_states(env).items() if state == "alloc"]
    # The test's lever: the dead-man time, 10 minutes by default, shortened to one.
    awsc(env, "ssh", "el", node, "--", "echo '{\"after_minutes\": 1}' | sudo tee /etc/awsc/deadman.json")
    on_master(env, "sudo systemctl stop slurmctld")
    try:
        wait_until(lambda: node not in workers(cloud), timeout=300)
    finally:
        on_master(env, "sudo systemctl start slurmctld")
    wait_until(lambda: len(our_containers()) == 1, timeout=60)


def test_down_leaves_nothing_of_it(cloud, env):
    awsc(env, "down", "el", "--delete-volume", "--yes")
    wait_until(lambda: not our_containers(), timeout=60)
    client = cloud.ec2()
    assert instances(client, "el") == []
    tag = [{"Name": "tag:awsc:cluster", "Values": ["el"]}]
    assert client.describe_security_groups(Filters=tag)["SecurityGroups"] == []
    assert client.describe_key_pairs(Filters=tag)["KeyPairs"] == []
    iam = cloud.client("iam")
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("awsc-el-")] == []
    profiles = iam.list_instance_profiles()["InstanceProfiles"]
    assert [p["InstanceProfileName"] for p in profiles if p["InstanceProfileName"].startswith("awsc-el-")] == []
