#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ec2_instance_type_info
short_description: What EC2 knows of some instance types, and whether a zone offers them
description:
  - Describes the given instance types (architectures, vCPUs, cores, threads, memory, free-tier
    eligibility) with C(DescribeInstanceTypes), and with O(zone) lists those the zone does not
    offer (C(DescribeInstanceTypeOfferings)). amazon.aws has no module for either.
  - Unknown types are listed in RV(missing), not an error, so a playbook can say what to do.
version_added: 0.1.0
options:
  instance_types:
    description: Instance types, for example C(t3.micro).
    type: list
    elements: str
    required: true
  zone:
    description: An availability zone whose offerings are checked.
    type: str
author:
  - awsc developers
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Check the cluster's instance types
  awsc.cluster.ec2_instance_type_info:
    instance_types: [t3.micro, c5.xlarge]
    zone: us-east-1a
  register: types
"""

RETURN = r"""
instance_types:
  description: The types that exist, by name.
  returned: always
  type: dict
  sample: {"t3.micro": {"architectures": ["x86_64"], "vcpus": 2, "cores": 1, "threads_per_core": 2,
           "memory_mib": 1024, "free_tier_eligible": true}}
missing:
  description: The given types that do not exist in the region.
  returned: always
  type: list
  elements: str
not_offered:
  description: The given types that exist but are not offered in O(zone) (empty without O(zone)).
  returned: always
  type: list
  elements: str
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


def describe(info):
    vcpu = info.get("VCpuInfo", {})
    return {
        "architectures": info.get("ProcessorInfo", {}).get("SupportedArchitectures", []),
        "vcpus": vcpu.get("DefaultVCpus", 0),
        "cores": vcpu.get("DefaultCores", vcpu.get("DefaultVCpus", 0)),
        "threads_per_core": vcpu.get("DefaultThreadsPerCore", 1),
        "memory_mib": info.get("MemoryInfo", {}).get("SizeInMiB", 0),
        "free_tier_eligible": bool(info.get("FreeTierEligible", False)),
    }


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "instance_types": {"type": "list", "elements": "str", "required": True},
            "zone": {"type": "str"},
        },
        supports_check_mode=True,
    )
    wanted = sorted(set(module.params["instance_types"]))
    zone = module.params["zone"]
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    try:
        # A filter, not InstanceTypes=: an unknown name is then left out instead of failing the call.
        pages = ec2.get_paginator("describe_instance_types").paginate(
            Filters=[{"Name": "instance-type", "Values": wanted}]
        )
        found = {i["InstanceType"]: describe(i) for page in pages for i in page["InstanceTypes"]}
        offered = set(found)
        if zone and found:
            pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
                LocationType="availability-zone",
                Filters=[{"Name": "location", "Values": [zone]}, {"Name": "instance-type", "Values": sorted(found)}],
            )
            offered = {o["InstanceType"] for page in pages for o in page["InstanceTypeOfferings"]}
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg="Could not describe the instance types")
    module.exit_json(
        changed=False,
        instance_types=found,
        missing=[t for t in wanted if t not in found],
        not_offered=sorted(set(found) - offered),
    )


if __name__ == "__main__":
    main()
