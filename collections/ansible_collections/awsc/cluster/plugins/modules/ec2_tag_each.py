#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ec2_tag_each
short_description: Set tags that differ per resource on many EC2 resources in one task
description:
  - Like M(amazon.aws.ec2_tag) with O(amazon.aws.ec2_tag#module:purge_tags=false), but for many
    resources at once, each with its own tags (a cluster's workers each get their own C(Name)).
  - One module run instead of one per resource: naming 100 new workers takes seconds, not minutes.
  - Tags not given are left alone.
version_added: 0.1.0
options:
  resources:
    description: Resource id (for example C(i-0123456789abcdef0)) to the tags it must carry.
    type: dict
    required: true
author:
  - awsc developers
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Name two workers
  awsc.cluster.ec2_tag_each:
    resources:
      i-0123456789abcdef0: {Name: demo-node001, "awsc:node": node001}
      i-0fedcba9876543210: {Name: demo-node002, "awsc:node": node002}
"""

RETURN = r"""
changed_resources:
  description: The ids of the resources whose tags were changed.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import ensure_ec2_tags
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def main():
    module = AnsibleAWSModule(
        argument_spec={"resources": {"type": "dict", "required": True}},
        supports_check_mode=True,
    )
    ec2 = module.client("ec2")
    changed = [
        resource
        for resource, tags in sorted(module.params["resources"].items())
        if ensure_ec2_tags(ec2, module, resource, tags={k: str(v) for k, v in tags.items()}, purge_tags=False)
    ]
    module.exit_json(changed=bool(changed), changed_resources=changed)


if __name__ == "__main__":
    main()
