"""What this machine remembers of a cluster, under ``$XDG_STATE_HOME/awsc/NAME/``.

- ``place.json``: where ``awsc up`` put it (the local cloud, or an AWS region), so that every later
  command for that name goes there without ``--local`` or ``--region``, and the hints awsc prints
  work as printed;
- ``settings.json``: the extra-vars of the last ``up``.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awsc import paths


@dataclass(frozen=True)
class Place:
    region: str
    local: bool


def _file(name: str, what: str) -> Path:
    return paths.state_dir() / name / f"{what}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def remember_place(name: str, place: Place) -> None:
    _write(_file(name, "place"), {"region": place.region, "local": place.local})


def place(name: str) -> Place | None:
    path = _file(name, "place")
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Place(region=data["region"], local=bool(data["local"]))


def forget_place(name: str) -> None:
    _file(name, "place").unlink(missing_ok=True)


def save_settings(name: str, settings: dict[str, Any]) -> None:
    _write(_file(name, "settings"), settings)


def saved_settings(name: str) -> dict[str, Any]:
    path = _file(name, "settings")
    return json.loads(path.read_text()) if path.exists() else {}
