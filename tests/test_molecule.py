"""The node roles on real systemd containers: one `molecule test` per scenario in molecule/.

Each run creates podman containers from the node image (make image), converges, checks
idempotence, verifies and destroys them. Slow (minutes each); fails, never skips, when podman or
the image is missing. Ansible and Molecule write only below a temporary HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/awsc-node:bookworm"
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
TIMEOUT = 30 * 60


@pytest.fixture(scope="module")
def molecule_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("molecule-home")
    env = {
        **os.environ,
        # molecule calls ansible-config & co: the interpreter's own bin first.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CONTAINERS_CONF": str(ROOT / "images" / "containers.conf"),
        "HOME": str(home),
        "ANSIBLE_HOME": str(home / ".ansible"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }
    if shutil.which("podman", path=env["PATH"]) is None:
        pytest.fail("podman not found: make system-deps")
    if shutil.which("molecule", path=env["PATH"]) is None:
        pytest.fail("molecule not found next to this Python: make venv")
    exists = subprocess.run(["podman", "image", "exists", IMAGE], env=env)
    if exists.returncode != 0:
        pytest.fail(f"{IMAGE} missing: make image")
    return env


def _leftovers(scenario: str, env: dict[str, str]) -> list[str]:
    """Remove what a failed run may leave: its containers, network and loop devices."""
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    found = []
    for platform in config.get("platforms", []):
        name = platform["name"]
        if subprocess.run(["podman", "container", "exists", name], env=env).returncode == 0:
            found.append(f"container {name}")
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=env, capture_output=True)
    for network in {p["network"] for p in config.get("platforms", []) if "network" in p}:
        if subprocess.run(["podman", "network", "exists", network], env=env).returncode == 0:
            found.append(f"network {network}")
            subprocess.run(["podman", "network", "rm", "-f", network], env=env, capture_output=True)
    loops = subprocess.run(["losetup", "--list", "--json"], capture_output=True, text=True)
    for device in json.loads(loops.stdout or '{"loopdevices": []}')["loopdevices"]:
        if (device.get("back-file") or "").startswith(env["HOME"]):
            found.append(f"loop {device['name']}")
            subprocess.run(["losetup", "--detach", device["name"]], capture_output=True)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str, molecule_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / f"molecule-{scenario}.log"
    try:
        with log.open("w") as out:
            result = subprocess.run(
                ["molecule", "test", "--scenario-name", scenario],
                cwd=ROOT,
                env=molecule_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT,
            )
    finally:
        leftovers = _leftovers(scenario, molecule_env)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-150:])
    assert result.returncode == 0, f"molecule test -s {scenario} failed (log {log}):\n{tail}"
    assert not leftovers, f"molecule test -s {scenario} left {leftovers} behind"
