"""Where awsc finds its playbooks and keeps its files.

The playbooks are not copied into the Python package: awsc is installed from the repository
checkout (``pip install -e .``, as ``make venv`` does), so the project directory is two levels
above this file (``wrapper/awsc/../..``), holding ``ansible.cfg``, ``playbooks/`` and
``inventory/``. ``AWSC_PROJECT_DIR`` points awsc at another checkout (or an unpacked
``awsc.cluster`` collection with the same layout).

The user's files follow the XDG base directories:

- config: ``$XDG_CONFIG_HOME/awsc/`` (``~/.config/awsc``): ``config.toml``, ``keys/NAME.pem``,
  ``keys/NAME.known_hosts`` (the nodes' host key);
- state: ``$XDG_STATE_HOME/awsc/NAME/`` (``~/.local/state/awsc``): ``runs/<timestamp>-<verb>/`` with
  the full log of every playbook run, and ``settings.json`` (the extra-vars of the last ``up``);
- cache: ``$XDG_CACHE_HOME/awsc/prices.json`` (``~/.cache/awsc``): the table ``awsc price --refresh`` writes.
"""

import os
from pathlib import Path


def project_dir() -> Path:
    override = os.environ.get("AWSC_PROJECT_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent.parent


def playbook(verb: str) -> Path:
    return project_dir() / "playbooks" / f"{verb}.yml"


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    base = Path(value) if value else Path(os.environ.get("HOME") or Path.home()) / fallback
    return base / "awsc"


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config")


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state")


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache")


def config_file() -> Path:
    return config_dir() / "config.toml"


def key_file(cluster: str) -> Path:
    """The private key awsc created for a cluster (playbooks/vars/cluster.yml: awsc_key_file)."""
    return config_dir() / "keys" / f"{cluster}.pem"


def known_hosts_file(cluster: str) -> Path:
    """The nodes' host keys (playbooks/vars/cluster.yml: awsc_known_hosts_file)."""
    return config_dir() / "keys" / f"{cluster}.known_hosts"
