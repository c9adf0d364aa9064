"""The local cloud end to end, through the real `awsc` command: the EC2 emulator plus the node
agent turn instances into systemd containers, and the very same playbooks build a working Slurm
cluster on them. Only the endpoint and two settings differ from AWS: nodes are reached at their
private addresses, and /home/awsc and /data are shared with sshfs (this kernel has no NFS)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, isolated_env

pytestmark = pytest.mark.slow
AWSC = str(Path(sys.executable).parent / "awsc")


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


def run_awsc(env, *args, check=True, timeout=1200) -> subprocess.CompletedProcess:
    proc = subprocess.run([AWSC, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"awsc {' '.join(args)} failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def awsc(env, *args, **kwargs) -> str:
    return run_awsc(env, *args, **kwargs).stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A home of its own; afterwards no container, loop device or volume file is left."""
    assert not our_containers(), "containers of an earlier local cloud are still there"
    home = tmp_path_factory.mktemp("local")
    env = dict(isolated_env(home, None), CONTAINERS_CONF=str(REPO / "images/containers.conf"))
    volumes = Path(env["XDG_STATE_HOME"]) / "awsc/local/volumes"
    yield env
    awsc(env, "down", "e2e", "--local", "--delete-volume", "--yes", check=False)
    awsc(env, "local", "stop", check=False)
    for name in our_containers():
        subprocess.run(["podman", "rm", "-f", name], check=False)
    for image in volumes.glob("*.img"):
        attached = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout
        for line in attached.splitlines():
            subprocess.run(["losetup", "-d", line.split(":", 1)[0]], check=False)


def on_master(env, command: str) -> str:
    """A command as the cluster user on the master, through `awsc ssh`."""
    return awsc(env, "ssh", "e2e", "--local", "--", f"sudo -iu awsc sh -c '{command}'", timeout=300)


def test_up_runs_jobs_keeps_data_and_down_leaves_nothing(env):
    volumes = Path(env["XDG_STATE_HOME"]) / "awsc/local/volumes"

    awsc(env, "up", "e2e", "--local", "-n", "2", "--yes")
    status = json.loads(awsc(env, "status", "e2e", "--local", "--json"))
    assert sorted(node["node"] for node in status["nodes"]) == ["master", "node001", "node002"]
    assert len(our_containers()) == 3

    # Slurm sees both workers idle; a batch job as the cluster user runs on both, its output
    # lands in the shared home and is read back on the master.
    sinfo = on_master(env, 'sinfo --noheader -N -o "%N %t"')
    assert sorted(sinfo.splitlines()) == ["node001 idle", "node002 idle"], sinfo
    out = on_master(env, 'cd ~ && sbatch --wait -N2 -o e2e.out --wrap "srun hostname" >/dev/null && cat e2e.out')
    assert sorted(out.split()) == ["node001", "node002"]

    # /data is on the volume and shared with the workers.
    on_master(env, "echo kept > /data/result.txt")
    assert awsc(env, "ssh", "e2e", "node002", "--local", "--", "cat /data/result.txt").strip() == "kept"

    # A second `up` changes nothing: awsc lists every step that changed something as "  + step".
    again = run_awsc(env, "up", "e2e", "--local", "-n", "2", "--yes")
    assert "\n  + " not in again.stdout + again.stderr, again.stderr

    # `down` keeps the volume (and its file); a new cluster on it finds the file again.
    volume = json.loads(awsc(env, "down", "e2e", "--local", "--yes", "--json"))
    kept = [item["id"] for item in volume["leftovers"] if item["type"] == "volume"]
    assert len(kept) == 1
    wait_until(lambda: not our_containers())
    assert (volumes / f"{kept[0]}.img").exists()
    awsc(env, "up", "e2e", "--local", "-n", "1", "--volume-id", kept[0], "--yes")
    assert on_master(env, "cat /data/result.txt").strip() == "kept"

    # `down --delete-volume`: no instance, volume, container or loop device is left.
    gone = awsc(env, "down", "e2e", "--local", "--delete-volume", "--yes")
    assert "nothing is left that bills" in gone
    wait_until(lambda: not our_containers())
    wait_until(lambda: not list(volumes.glob("*.img")))
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(volumes) not in loops
