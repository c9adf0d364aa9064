"""The `awsc` command line: it only puts the commands together. Each subject's commands live in a
module of awsc.commands (base: the apps, options and helpers they share); the work behind them in
awsc.config, awsc.runner, awsc.pricing, awsc.cloud, awsc.ssh and awsc.local, which the commands
import when they run, so that `awsc --help` does not load ansible-runner, boto3 or rich.
JSON outputs are documented in awsc.schemas.
"""

import importlib
import sys

from awsc.commands.base import app

# Importing a command module registers its commands on the apps of awsc.commands.base, in this
# order in `awsc --help`: a cluster's life first.
COMMAND_MODULES = (
    "lifecycle",
    "inspect",
    "access",
    "prices",
    "doctor_cmd",
    "config_cmd",
    "images",
    "local_cmd",
    "volumes",
)
for _module in COMMAND_MODULES:
    importlib.import_module(f"awsc.commands.{_module}")

__all__ = ["app", "run"]


def run() -> None:  # pragma: no cover - `python -m awsc.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
