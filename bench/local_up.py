#!/usr/bin/env python3
"""Time `awsc up NAME --local` on the local cloud: from no cluster to a ready one (provisioned in
the EC2 emulator, containers booted by the agent, configured by the same playbooks, Slurm
reporting every worker idle), then the no-change re-run, then `awsc down --delete-volume`.
Prints figures; not a test.

    python bench/local_up.py                 # 2 and 4 workers
    python bench/local_up.py --workers 2
    python bench/local_up.py --workers 2 --bake   # time a local bake (and the image's size) first:
                                                  # the clusters then launch from that image

Runs in a temporary home (HOME, XDG_*, ANSIBLE_HOME), so your own awsc and Ansible files are
not touched. Needs root, podman + runc, the node image (make image) and the venv's awsc.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AWSC = str(Path(sys.executable).parent / "awsc")
NAME = "bench"


def environment(home: Path) -> dict[str, str]:
    """The tests' isolation (tests/conftest.py), plus the podman settings the local cloud uses."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import isolated_env

    return dict(isolated_env(home, None), CONTAINERS_CONF=str(ROOT / "images/containers.conf"))


def awsc(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Runs awsc; returns its wall time and output (and stops the benchmark when it fails)."""
    start = time.monotonic()
    proc = subprocess.run([AWSC, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"awsc {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def bench(workers: int, env: dict[str, str]) -> dict[str, float]:
    up, _ = awsc(env, "up", NAME, "--local", "-n", str(workers), "--yes")
    _, sinfo = awsc(env, "ssh", NAME, "--local", "--", "sinfo --noheader -N -o '%N %t'")
    idle = [line for line in sinfo.splitlines() if line.endswith(" idle")]
    if len(idle) != workers:
        sys.exit(f"expected {workers} idle workers, sinfo says:\n{sinfo}")
    again, output = awsc(env, "up", NAME, "--local", "-n", str(workers), "--yes")
    if "\n  + " in output:
        sys.exit(f"the re-run changed something:\n{output}")
    down, _ = awsc(env, "down", NAME, "--local", "--delete-volume", "--yes")
    return {"up": up, "re-run": again, "down": down}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, action="append", help="workers (repeatable; default 2 and 4)")
    parser.add_argument("--bake", action="store_true", help="bake a local image first and launch from it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="awsc-bench-") as home:
        env = environment(Path(home))
        started, _ = awsc(env, "local", "start")
        print(f"local cloud started in {started:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        try:
            if args.bake:
                baked, _ = awsc(env, "image", "bake", NAME, "--local")
                _, listed = awsc(env, "image", "ls", "--local", "--json")
                image = f"localhost/awsc-ami:{json.loads(listed)[0]['id']}"
                size = subprocess.run(
                    ["podman", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True
                ).stdout.strip()
                print(f"local bake {baked:.1f} s, image {int(size) / 1e9:.2f} GB ({image})", flush=True)
            for workers in args.workers or [2, 4]:
                figures = bench(workers, env)
                print(
                    f"1+{workers}: up {figures['up']:.1f} s, no-change re-run {figures['re-run']:.1f} s, "
                    f"down {figures['down']:.1f} s (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        finally:
            cleanups = [["down", NAME, "--local", "--delete-volume", "--yes"], ["image", "rm", NAME, "--local"]]
            for cleanup in [*cleanups, ["local", "stop"]]:
                subprocess.run([AWSC, *cleanup], cwd=ROOT, env=env, capture_output=True)


if __name__ == "__main__":
    main()
