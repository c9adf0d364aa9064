#!/usr/bin/env python3
"""Wall time of `awsc --help` (the installed command, a fresh process each time) and what it imports.

    .venv/bin/python bench/cli_help.py [RUNS]      (default: 10)

Prints the median and the best of RUNS runs, for `awsc --help` and `awsc up --help`, and whether
ansible-runner, boto3 or botocore got imported (they must not: the target is under 0.3 s).
A benchmark, not a test: the numbers depend on the machine and its load.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

AWSC = Path(sys.executable).parent / "awsc"
HEAVY = ("ansible_runner", "boto3", "botocore", "ansible")


def timed(args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main(runs: int) -> None:
    for args in ([str(AWSC), "--help"], [str(AWSC), "up", "--help"]):
        timed(args)  # warm the page cache and the .pyc files
        times = [timed(args) for _ in range(runs)]
        print(f"{' '.join(['awsc', *args[1:]]):<16} median {statistics.median(times):.3f} s  best {min(times):.3f} s")
    probe = (
        "import sys, awsc.cli\n"
        "try:\n    awsc.cli.app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stderr.strip()
    print(f"heavy modules imported by --help: {loaded}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
