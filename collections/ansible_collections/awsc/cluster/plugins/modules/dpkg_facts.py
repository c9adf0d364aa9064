#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: dpkg_facts
short_description: The fully installed packages of a Debian node, as package facts, read from dpkg
description:
  - Sets C(ansible_facts.packages) in the format of M(ansible.builtin.package_facts), so tasks
    that look at it work with either, but lists only packages that dpkg reports fully installed
    (state C(i), held or not). A package whose install was cut short (unpacked, half-configured)
    is left out, so a role that skips apt when its packages are listed still runs apt for it.
  - Reads C(dpkg-query) instead of loading the apt cache (about a fifth of package_facts' time),
    and it needs no python3-apt (a bare node has none).
  - Also sets C(ansible_facts.dpkg_interrupted), true when an install did not finish, that is when dpkg's
    journal is not empty (apt then refuses to run until C(dpkg --configure -a)) or a package is
    left unpacked, half-configured or half-installed.
version_added: 0.1.0
options: {}
author:
  - awsc developers
"""

EXAMPLES = r"""
- name: List the installed packages
  awsc.cluster.dpkg_facts:

- name: Install what is missing only
  ansible.builtin.apt:
    name: [slurmd, munge]
  when: "['slurmd', 'munge'] | difference(ansible_facts['packages'] | default({}) | list) | length > 0"
"""

RETURN = r"""
ansible_facts:
  description: C(packages) (name to a list of C(name), C(version), C(arch), C(source)) and C(dpkg_interrupted).
  returned: always
  type: dict
"""

import glob

from ansible.module_utils.basic import AnsibleModule

FORMAT = "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n"


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    rc, out, err = module.run_command(["dpkg-query", "--show", "--showformat", FORMAT])
    if rc != 0:
        module.fail_json(msg=f"dpkg-query failed: {err.strip()}")
    packages = {}
    interrupted = bool(glob.glob("/var/lib/dpkg/updates/[0-9]*"))
    for line in out.splitlines():
        name, version, arch, status = (line.split("\t") + ["", "", ""])[:4]
        # Status-Abbrev: wanted (i, h for held, ...), then state (i: installed).
        if status[1:2] == "i":
            packages.setdefault(name, []).append({"name": name, "version": version, "arch": arch, "source": "apt"})
        # States H/U/F/W/t are installs cut short.
        interrupted = interrupted or status[1:2] in ("H", "U", "F", "W", "t")
    module.exit_json(changed=False, ansible_facts={"packages": packages, "dpkg_interrupted": interrupted})


if __name__ == "__main__":
    main()
