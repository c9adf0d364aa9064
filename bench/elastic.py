#!/usr/bin/env python3
"""Time elastic workers on the local cloud, from a baked image: seconds from `sbatch` to the job
running on a powered-down node (the master launches it, the agent boots it, the master configures
it, slurmd registers), and from the job's end to the node's instance terminated (SuspendTime, here
1 minute, plus SuspendProgram). Prints figures; not a test.

    python bench/elastic.py            # 3 rounds
    python bench/elastic.py --rounds 1

Target on the 2-core build machine: the job running within 60 s of `sbatch` (ParallelCluster's
published baseline on EC2: a median of 294 s). Runs in a temporary home; needs root, podman +
runc, the node image (make image) and the venv's awsc. The bake is part of the set-up, not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_up import AWSC, ROOT, awsc, environment  # noqa: E402

NAME = "benchel"


def on_master(env: dict[str, str], command: str) -> str:
    return awsc(env, "ssh", NAME, "--", command)[1]


def wait(check, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.5)
    sys.exit(f"timed out waiting for {what}")


def elastic_instances(env: dict[str, str]) -> int:
    listed = on_master(env, "sinfo -h -N -o '%t'").split()
    return sum(1 for state in listed if not state.endswith("~"))


def round_trip(env: dict[str, str]) -> tuple[float, float]:
    job = on_master(env, "sudo -iu awsc sbatch --parsable -N1 --wrap 'sleep 5'").strip()
    submitted = time.monotonic()
    wait(lambda: on_master(env, f"squeue -h -j {job} -o %T").strip() == "RUNNING", 600, "the job to run")
    started = time.monotonic() - submitted
    wait(lambda: on_master(env, f"squeue -h -j {job} -o %T").strip() == "", 120, "the job to end")
    ended = wait(lambda: elastic_instances(env) == 0, 600, "the node to power down")
    return started, ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="awsc-bench-") as home:
        env = environment(Path(home))
        try:
            awsc(env, "local", "start")
            awsc(env, "image", "bake", NAME, "--local")
            up, _ = awsc(env, "up", NAME, "--local", "-n", "0", "--max-workers", "2", "--idle-minutes", "1", "--yes")
            print(f"master alone up in {up:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
            starts, ends = [], []
            for _ in range(args.rounds):
                started, ended = round_trip(env)
                starts.append(started)
                ends.append(ended)
                print(
                    f"sbatch to running on a powered-down node {started:.1f} s; "
                    f"job end to powered down {ended:.1f} s (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            print(f"median: start {statistics.median(starts):.1f} s, power down {statistics.median(ends):.1f} s")
        finally:
            for cleanup in (["down", NAME, "--local", "--delete-volume", "--yes"], ["image", "rm", NAME, "--local"]):
                subprocess.run([AWSC, *cleanup], cwd=ROOT, env=env, capture_output=True)
            subprocess.run([AWSC, "local", "stop"], cwd=ROOT, env=env, capture_output=True)


if __name__ == "__main__":
    main()
