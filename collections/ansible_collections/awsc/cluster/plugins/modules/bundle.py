#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: bundle
short_description: Pack directories into a reproducible tar.gz
description:
  - Writes the directories given into one gzipped tar file whose bytes depend only on the files'
    names, contents and modes (sorted entries, no times, owners or compiled Python), so the same
    trees give the same file and a copy of it elsewhere changes only when they changed.
  - Reports C(changed) only when the file it writes differs from the one already at O(dest).
version_added: 0.1.0
options:
  dest:
    description: The tar.gz to write.
    type: path
    required: true
  trees:
    description: Folder inside the archive, to the directory packed there.
    type: dict
    required: true
author:
  - awsc developers
"""

EXAMPLES = r"""
- name: Pack the collection for the master
  awsc.cluster.bundle:
    dest: /tmp/bundle.tar.gz
    trees:
      ansible_collections/awsc/cluster: "{{ awsc_collection_dir }}"
  delegate_to: localhost
"""

RETURN = r"""
sha256:
  description: The SHA-256 of the file written.
  returned: always
  type: str
"""

import gzip
import hashlib
import io
import os
import tarfile

from ansible.module_utils.basic import AnsibleModule

SKIPPED = ("__pycache__", ".git", ".pytest_cache")


def pack(trees):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcroot, source in sorted(trees.items()):
            for top, dirs, files in os.walk(source):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
                for name in sorted(files):
                    if name.endswith((".pyc", ".pyo")):
                        continue
                    path = os.path.join(top, name)
                    info = tar.gettarinfo(path, os.path.join(arcroot, os.path.relpath(path, source)))
                    if not (info.isfile() or info.issym()):
                        continue
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                    info.mode = 0o755 if info.mode & 0o111 else 0o644
                    if info.isfile():
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as zipped:
        zipped.write(raw.getvalue())
    return packed.getvalue()


def main():
    module = AnsibleModule(
        argument_spec={"dest": {"type": "path", "required": True}, "trees": {"type": "dict", "required": True}},
        supports_check_mode=True,
    )
    dest, trees = module.params["dest"], module.params["trees"]
    missing = [path for path in trees.values() if not os.path.isdir(path)]
    if missing:
        module.fail_json(msg=f"not a directory: {', '.join(missing)}")
    data = pack(trees)
    digest = hashlib.sha256(data).hexdigest()
    before = None
    if os.path.exists(dest):
        with open(dest, "rb") as handle:
            before = hashlib.sha256(handle.read()).hexdigest()
    changed = before != digest
    if changed and not module.check_mode:
        tmp = f"{dest}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, dest)
    module.exit_json(changed=changed, sha256=digest)


if __name__ == "__main__":
    main()
