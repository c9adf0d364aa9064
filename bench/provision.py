#!/usr/bin/env python3
"""Wall time of playbooks/provision.yml against the local EC2 emulator, for N workers.

    .venv/bin/python bench/provision.py [N ...]      (default: 1 10 100)

Prints, per N: the first provision, the no-change re-run, and terminate. A benchmark, not a
test: the numbers depend on the machine (figures in the README and the issue notes).
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from awsc.emulator import start  # noqa: E402
from conftest import DATA, isolated_env, provision, terminate  # noqa: E402


def timed(step, *args, **kwargs) -> float:
    began = time.monotonic()
    step(*args, **kwargs)
    return time.monotonic() - began


def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        emulator = start(DATA / "amis.json", Path(tmp) / "moto.log")
        try:
            env = isolated_env(Path(tmp) / "home", emulator.endpoint)
            print(f"{'workers':>8} {'provision':>10} {'re-run':>8} {'terminate':>10}")
            for n in sizes:
                name = f"bench{n}"
                first = timed(provision, env, name, workers=n)
                again = timed(provision, env, name, workers=n)
                down = timed(terminate, env, name, delete_volume=True)
                print(f"{n:>8} {first:>9.1f}s {again:>7.1f}s {down:>9.1f}s", flush=True)
        finally:
            emulator.stop()


if __name__ == "__main__":
    main([int(n) for n in sys.argv[1:]] or [1, 10, 100])
