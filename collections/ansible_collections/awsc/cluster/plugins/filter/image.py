# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The digest of what a baked image holds: the files that decide its packages, and the settings."""

import hashlib
import json
from pathlib import Path

DOCUMENTATION = r"""
name: install_digest
short_description: Digest of a node image's install inputs
description:
  - Hashes the files (their paths below O(root) and their contents) and the settings, so an image
    baked from the same package lists, pinned versions and settings has the same digest.
  - Returns 16 hex digits.
options:
  _input:
    description: File paths, relative to O(root).
    type: list
    elements: str
    required: true
  root:
    description: The folder the paths are relative to (the collection's).
    type: str
    required: true
  settings:
    description: The bake's settings that change what is installed.
    type: dict
    default: {}
"""


def install_digest(files, root, settings=None):
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (Path(root) / name).read_bytes() + b"\0")
    digest.update(json.dumps(settings or {}, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


class FilterModule:
    def filters(self):
        return {"install_digest": install_digest}
