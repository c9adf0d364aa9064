"""Baked images on the local cloud, through `awsc` and the playbook: the builder is a real
container, the image a `podman commit` of it, and a cluster launched from it configures without
installing a package and runs R, MPI, Fortran and Python jobs across its workers.

One story in file order, on the session's local cloud, whose image `img` the session baked
(tests/localcloud.py); its last test removes that image."""

import json
import re
import subprocess

import pytest
from conftest import REPO, VENV_BIN
from localcloud import IMAGE, awsc, instances, our_containers, podman_images, run_awsc, take_down, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(local_cloud):
    """The session's local cloud; this story's clusters are gone afterwards."""
    yield local_cloud
    take_down(local_cloud, "bk")


@pytest.fixture(scope="module")
def env(cloud):
    return cloud.env


def builder_leftovers(client, image: str) -> list[str]:
    tag = [{"Name": "tag:awsc:image", "Values": [image]}]
    alive = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    found = [
        i["InstanceId"] for r in client.describe_instances(Filters=tag + alive)["Reservations"] for i in r["Instances"]
    ]
    found += [g["GroupId"] for g in client.describe_security_groups(Filters=tag)["SecurityGroups"]]
    found += [k["KeyName"] for k in client.describe_key_pairs(Filters=tag)["KeyPairs"]]
    return found


def images_named(client, image: str) -> list[dict]:
    return client.describe_images(Owners=["self"], Filters=[{"Name": "tag:awsc:image", "Values": [image]}])["Images"]


def changed_tasks(log: str) -> list[str]:
    """The tasks of an Ansible log that changed something on some host."""
    tasks = re.split(r"^TASK \[", log, flags=re.M)[1:]
    return [t.split("]", 1)[0] for t in tasks if re.search(r"^changed: ", t, flags=re.M)]


def test_a_failing_bake_leaves_nothing_and_says_why(cloud, env):
    """The playbook alone (no awsc), with a package that does not exist."""
    from awsc import local

    run_env = dict(env, **local.environment(cloud.ec2().meta.endpoint_url))
    extra = {
        **local.extravars(run_env["AWS_ENDPOINT_URL"]),
        "image_name": "broken",
        "common_packages": ["awsc-no-such-package"],
    }
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/bake.yml", "-e", json.dumps(extra)],
        cwd=REPO,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode != 0
    assert "The image broken was not made, and nothing of its builder is left" in proc.stdout
    assert "awsc-no-such-package" in proc.stdout
    client = cloud.ec2()
    assert builder_leftovers(client, "broken") == []
    assert images_named(client, "broken") == []
    wait_until(lambda: not our_containers(), timeout=60)


def test_bake_makes_one_encrypted_image_and_removes_its_builder(cloud, env):
    # The session baked it (`awsc image bake img --local`): one image (described right after the
    # bake: a restart of the local cloud since registers it again), nothing of its builder left.
    client = cloud.ec2()
    made = images_named(client, IMAGE)
    assert len(made) == 1
    tags = {t["Key"]: t["Value"] for t in cloud.image["Tags"]}
    assert tags["awsc:digest"] == re.search(r"digest ([0-9a-f]{16})", cloud.newest_run("_images", "bake")).group(1)
    assert tags["awsc:collection"] and tags["awsc:user"] == "admin" and int(tags["awsc:packages"]) > 300
    assert cloud.snapshot["Encrypted"]
    assert f"localhost/awsc-ami:{made[0]['ImageId']}" in podman_images()
    assert builder_leftovers(client, IMAGE) == []
    wait_until(lambda: not our_containers(), timeout=60)
    assert "Julia is left out" in cloud.baked

    listed = json.loads(awsc(env, "image", "ls", "--local", "--json"))
    assert [(i["name"], i["id"], i["matches"]) for i in listed] == [(IMAGE, made[0]["ImageId"], True)]

    awsc(env, "image", "bake", IMAGE, "--local")
    assert "changed=0" in cloud.newest_run("_images", "bake").split("PLAY RECAP")[-1]
    assert len(images_named(client, IMAGE)) == 1


def test_a_cluster_from_the_image_installs_nothing_and_runs_r_mpi_fortran_python(cloud, env):
    # Its guard ends it after 2 idle minutes (the next test).
    out = run_awsc(env, "up", "bk", "--local", "-n", "2", "--idle-shutdown", "2", "--yes", timeout=1800)
    assert "Image: img (" in out.stdout
    changed = changed_tasks(cloud.newest_run("bk", "launch"))
    assert changed, "the launch changed nothing at all: the log was not read"
    assert [t for t in changed if "packages" in t or "Install the packages" in t] == []

    awsc(env, "put", "bk", str(REPO / "scripts/jobs.sh"), "/tmp/jobs.sh")
    jobs = awsc(env, "ssh", "bk", "--", "sudo -iu awsc bash /tmp/jobs.sh", timeout=600)
    assert re.search(r"^node001\nnode002$", jobs, flags=re.M)
    assert "mpi rank 0 of 2 on node001" in jobs and "mpi rank 1 of 2 on node002" in jobs
    assert "r package awschello from /data/R/library/awschello on node002" in jobs
    assert "fortran on node001" in jobs
    assert re.search(r"python numpy \S+ mpi4py \S+ on node001", jobs)


def test_an_idle_cluster_ends_itself_and_keeps_its_data(cloud, env):
    """The guard on the master, unchanged: 2 minutes with no job and no login, then it powers the
    workers off and the master, and their shutdown behaviour (terminate) ends the instances."""
    awsc(env, "ssh", "bk", "--", "echo before | sudo -u awsc tee /data/before.txt")
    client = cloud.ec2()
    data = [{"Name": "tag:awsc:cluster", "Values": ["bk"]}, {"Name": "tag:awsc:role", "Values": ["data"]}]
    [volume] = client.describe_volumes(Filters=data)["Volumes"]

    def counting_down():
        """`awsc status` shows the guard's idle countdown"""
        return "idle: in " in awsc(env, "status", "bk").split("Guard (time and money left")[-1]

    wait_until(counting_down, timeout=90)
    wait_until(lambda: instances(client, "bk") == [], timeout=420)
    wait_until(lambda: not our_containers(), timeout=60)
    [row] = json.loads(awsc(env, "ls", "--local", "--json"))
    assert (row["name"], row["state"], row["ended_by"]) == ("bk", "ended", "idle")
    assert "ended: idle" in awsc(env, "ls", "--local")
    assert client.describe_volumes(VolumeIds=[volume["VolumeId"]])["Volumes"][0]["State"] == "available"
    # On the kept volume: the file written before, and why the cluster ended.
    assert on_volume(cloud, volume["VolumeId"], "/before.txt") == "before\n"
    assert json.loads(on_volume(cloud, volume["VolumeId"], "/.awsc/ended"))["reason"] == "idle"


def test_back_with_its_data_a_running_job_keeps_it_up_and_its_budget_ends_it_after_warnings(cloud, env):
    # Brought back as `awsc ls` says, with the same volume and its file, now with a budget.
    awsc(env, "up", "bk", "-n", "0", "--budget", "0.05", "--yes", timeout=900)
    assert awsc(env, "ssh", "bk", "--", "cat /data/before.txt").strip() == "before"
    client = cloud.ec2()
    [master] = instances(client, "bk")
    per_hour = float({t["Key"]: t["Value"] for t in master["Tags"]}["awsc:cost-per-hour"])
    awsc(env, "ssh", "bk", "--", "sudo -iu awsc sbatch --wrap 'sleep 900'")
    wait_until(lambda: awsc(env, "ssh", "bk", "--", "squeue -h -t running -o %i").strip(), timeout=60)
    # The test's lever: a launch time so far back that the budget runs out in 3 minutes, longer
    # than the 2 idle minutes that would end the cluster if the job did not count.
    back = (0.05 - per_hour * 180 / 3600) / per_hour * 3600
    shift = f'c = json.load(open(p)); c["launched_at"] = time.time() - {back:.0f}; open(p, "w").write(json.dumps(c))'
    awsc(env, "ssh", "bk", "--", f"sudo python3 -c 'import json, time; p = \"/etc/awsc/guard.json\"; {shift}'")
    assert "budget: in 3 minutes" in awsc(env, "status", "bk")

    def warned():
        """the guard's budget warnings in the master's journal"""
        journal = awsc(env, "ssh", "bk", "--", "sudo journalctl -u awsc-guard.service -o cat")
        return "of its $0.05 budget" in journal and "reaches its budget: awsc ends it in" in journal

    wait_until(warned, timeout=150)
    wait_until(lambda: instances(client, "bk") == [], timeout=300)
    [volume] = client.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["bk-data"]}])["Volumes"]
    assert json.loads(on_volume(cloud, volume["VolumeId"], "/.awsc/ended"))["reason"] == "budget"
    assert "ended: budget" in awsc(env, "ls", "--local")


def test_back_again_its_time_limit_ends_it_after_warnings(cloud, env):
    awsc(env, "up", "bk", "-n", "0", "--ttl", "1", "--yes", timeout=900)
    assert awsc(env, "ssh", "bk", "--", "cat /data/before.txt").strip() == "before"
    awsc(env, "ssh", "bk", "--", "sudo -iu awsc sbatch --wrap 'sleep 900'")
    # The lever again: launched 58 minutes ago, by the guard's clock, so its hour ends in 2 minutes.
    shift = 'c = json.load(open(p)); c["launched_at"] = time.time() - 58 * 60; open(p, "w").write(json.dumps(c))'
    awsc(env, "ssh", "bk", "--", f"sudo python3 -c 'import json, time; p = \"/etc/awsc/guard.json\"; {shift}'")
    assert "ttl: in 2 minutes" in awsc(env, "status", "bk")

    def warned():
        """the guard's time-limit warning in the master's journal"""
        journal = awsc(env, "ssh", "bk", "--", "sudo journalctl -u awsc-guard.service -o cat")
        return "reaches its time limit: awsc ends it in" in journal

    wait_until(warned, timeout=150)
    client = cloud.ec2()
    wait_until(lambda: instances(client, "bk") == [], timeout=300)
    [volume] = client.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["bk-data"]}])["Volumes"]
    assert json.loads(on_volume(cloud, volume["VolumeId"], "/.awsc/ended"))["reason"] == "ttl"
    [row] = json.loads(awsc(env, "ls", "--local", "--json"))
    assert (row["state"], row["ended_by"]) == ("ended", "ttl")


def on_volume(cloud, volume_id: str, path: str) -> str:
    """A file on a detached local volume, read straight from its image."""
    image = cloud.volumes_dir() / f"{volume_id}.img"
    return subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, text=True, check=True
    ).stdout


def test_image_rm_leaves_nothing(cloud, env):
    # (That images survive a restart of the local cloud: test_local_cloud.py.)
    awsc(env, "down", "bk", "--delete-volume", "--yes")
    client = cloud.ec2()
    [image] = images_named(client, IMAGE)
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    awsc(env, "image", "rm", IMAGE, "--local")
    assert images_named(client, IMAGE) == []
    assert snapshot not in {s["SnapshotId"] for s in client.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    wait_until(lambda: f"localhost/awsc-ami:{image['ImageId']}" not in podman_images(), timeout=30)
    assert "No awsc images" in awsc(env, "image", "ls", "--local")
