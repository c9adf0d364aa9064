# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' one rule for skipping apt: install only when a wanted package is not installed."""

DOCUMENTATION = r"""
name: missing_packages
short_description: The wanted packages the node's package facts do not list
description:
  - Returns the packages of the input list that C(ansible_facts.packages) (from awsc.cluster.dpkg_facts
    or ansible.builtin.package_facts) does not list, in the input's order.
  - Without package facts every package counts as missing, so apt runs and decides itself.
options:
  _input:
    description: The package names wanted.
    type: list
    elements: str
    required: true
  facts:
    description: The host's C(ansible_facts).
    type: dict
    required: true
"""


def missing_packages(wanted, facts):
    installed = facts.get("packages")
    if installed is None:
        return list(wanted)
    return [name for name in wanted if name not in installed]


class FilterModule:
    def filters(self):
        return {"missing_packages": missing_packages}
