# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for address ranges: Jinja has no IP parsing, and ansible.utils.ipaddr needs netaddr.

awsc's wrapper loads this file too (awsc.config.check_ssh_cidr), so the playbooks and the command
line judge an address range by the same code.
"""

import ipaddress

DOCUMENTATION = r"""
name: cidr_check
short_description: Judge an address range given for SSH access
description:
  - Returns a dict with C(network) (the range as EC2 wants it), C(version) (4 or 6),
    C(anywhere) (true for a /0) and C(error) (empty, or one sentence naming the fix).
  - A range with host bits set is an error that shows the network meant and the single address.
  - A /0 is an error unless O(anywhere_allowed) is true.
options:
  _input:
    description: The range, for example C(203.0.113.7/32) or C(2001:db8::/64).
    type: str
    required: true
  anywhere_allowed:
    description: Whether a /0 (the whole internet) is accepted.
    type: bool
    default: false
"""


def cidr_check(value, anywhere_allowed=False):
    text = str(value).strip()
    result = {"network": "", "version": 0, "anywhere": False, "error": ""}
    if "/" not in text:
        result["error"] = (
            f"ssh_cidr '{text}' is not an address range: give one with its prefix length, "
            "e.g. -e ssh_cidr=203.0.113.7/32."
        )
        return result
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        result["error"] = (
            f"ssh_cidr '{text}' is not a valid IPv4 or IPv6 range: use the form 203.0.113.7/32 or 2001:db8::/64."
        )
        return result
    address = ipaddress.ip_interface(text).ip
    single = f"{address}/{network.max_prefixlen}"
    if network.network_address != address:
        result["error"] = (
            f"ssh_cidr '{text}' has host bits set: the network is {network}; "
            f"for the one address pass -e ssh_cidr={single}."
        )
        return result
    result.update(network=str(network), version=network.version, anywhere=network.prefixlen == 0)
    if result["anywhere"] and not anywhere_allowed:
        result["error"] = (
            f"ssh_cidr '{text}' would open SSH to the whole internet: pass your own address "
            "(e.g. -e ssh_cidr=203.0.113.7/32), or add -e ssh_from_anywhere=true if you really mean it."
        )
    return result


class FilterModule:
    def filters(self):
        return {"cidr_check": cidr_check}
