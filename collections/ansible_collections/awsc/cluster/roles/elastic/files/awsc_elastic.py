#!/usr/bin/python3
"""awsc-elastic: Slurm's elastic workers, started and ended by the master itself.

slurmctld runs the first three (as root through sudo, see the role's README); timers the others:

    awsc-elastic resume HOSTLIST       launch the nodes in one call, address them, configure them
    awsc-elastic suspend HOSTLIST      terminate the nodes' instances
    awsc-elastic resume-fail HOSTLIST  a resume that timed out: terminate, down with the reason
    awsc-elastic reconcile             every minute: orphans terminated, lost nodes powered down
    awsc-elastic deadman               on an elastic worker, every minute: power off when the
                                       controller has been gone too long (EC2 then terminates it)

Every terminate acts on ids just looked up with the cluster's tag, the elastic tag and the node
names, and is skipped for an empty list: the master and the static workers are never touched.
The cloud calls use the master's instance profile (no key on the node); in the local cloud, the
endpoint and stand-in credentials the configuration names. boto3 is imported only where a call is
made, so the dead-man switch runs with the standard library alone.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

CONFIG = Path("/etc/awsc/elastic.json")
DEADMAN_CONFIG = Path("/etc/awsc/deadman.json")
STATE_DIR = Path("/var/lib/awsc")
LOG_DIR = Path("/var/log/awsc")
ALIVE = ["pending", "running", "stopping", "stopped"]
# A launched instance has this long to be named (awsc:node) before the reconciler calls it an orphan.
UNNAMED_GRACE = 300
# A node down for a failed resume stays down this long (its reason readable in sinfo), then is
# powered down again, back in service: longer than Slurm holds a requeued job (120 s), so the job
# runs on another node instead of waiting for this one.
DOWN_SHOWN = 180
REASON_PREFIX = "awsc: "


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)  # the journal, or elastic.log


# ---- what Slurm says ----------------------------------------------------------------------------


def _run(*argv: str, check: bool = True, timeout: float = 60) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check).stdout


def expand(hostlist: str) -> list[str]:
    """node[001-003],node007 -> [node001, node002, node003, node007], as Slurm expands it."""
    return _run("scontrol", "show", "hostnames", hostlist).split()


def parse_sinfo(text: str) -> dict[str, tuple[str, str]]:
    """`sinfo -h -N -o '%N|%T|%E'` -> {node: (state, reason)}; a node listed per partition once."""
    nodes = {}
    for line in text.splitlines():
        if line.count("|") >= 2:
            name, state, reason = line.split("|", 2)
            nodes[name.strip()] = (state.strip().lower(), reason.strip())
    return nodes


def powered_down(state: str) -> bool:
    """idle~ / POWERED_DOWN, or on its way there (%): no instance should exist."""
    return state.endswith(("~", "%")) or "powered_down" in state or "powering_down" in state


def powering_up(state: str) -> bool:
    return state.endswith("#") or "powering_up" in state


def slurm_nodes() -> dict[str, tuple[str, str]]:
    return parse_sinfo(_run("sinfo", "-h", "-N", "--format=%N|%T|%E"))


def set_node(node: str, **fields: str) -> None:
    _run("scontrol", "update", f"nodename={node}", *(f"{k}={v}" for k, v in fields.items()), check=False)


def node_down(node: str, reason: str) -> None:
    """Down with the reason (its jobs are requeued); reconcile powers it down after DOWN_SHOWN."""
    log(f"{node}: {reason}")
    set_node(node, state="down", reason=f"{REASON_PREFIX}{reason[:200]}")


# ---- the cloud ----------------------------------------------------------------------------------


def load_config() -> dict:
    return json.loads(CONFIG.read_text())


def ec2_client(config: dict):
    import boto3  # Debian's python3-boto3: only where a call is made

    options = {"region_name": config["region"]}
    if config.get("endpoint"):
        # The local cloud: its emulator at the podman network's gateway, which takes any key.
        options.update(endpoint_url=config["endpoint"], aws_access_key_id="local", aws_secret_access_key="local")
    return boto3.client("ec2", **options)


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def launch_request(config: dict, master: dict, count: int, user_data: str) -> dict:
    """RunInstances' parameters for `count` elastic workers: like the master (its image, subnet,
    groups and key pair: one source for them), the worker type, IMDSv2, an encrypted root,
    shutdown = terminate (dead-man switch, guard), and the tags that fence every later call (the
    node names follow with CreateTags, one call cannot name each)."""
    tags = {
        **config["tags"],
        "awsc:cluster": config["cluster"],
        "awsc:role": "worker",
        "awsc:elastic": "true",
    }
    request = {
        "ImageId": master["ImageId"],
        "InstanceType": config["instance_type"],
        "MinCount": count,
        "MaxCount": count,
        "SubnetId": master["SubnetId"],
        "SecurityGroupIds": [g["GroupId"] for g in master["SecurityGroups"]],
        "UserData": user_data,
        "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required"},
        "InstanceInitiatedShutdownBehavior": "terminate",
        "BlockDeviceMappings": [
            {
                "DeviceName": master["RootDeviceName"],
                "Ebs": {
                    "VolumeSize": int(config["root_volume_size"]),
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tag_list(tags)},
            {"ResourceType": "volume", "Tags": tag_list({"awsc:cluster": config["cluster"]})},
        ],
    }
    if master.get("KeyName"):
        request["KeyName"] = master["KeyName"]
    return request


def master_instance(ec2, config: dict) -> dict:
    """The cluster's running master, as EC2 describes it."""
    filters = [
        {"Name": "tag:awsc:cluster", "Values": [config["cluster"]]},
        {"Name": "tag:awsc:role", "Values": ["master"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    found = [i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]
    found = [i for i in found if tags_of(i).get("awsc:cluster") == config["cluster"]]
    if not found:
        raise RuntimeError(f"cluster {config['cluster']} has no running master")
    return found[0]


def user_data(host_key: str, host_key_pub: str, authorized_key: str) -> str:
    """cloud-config as provision's templates/user-data.j2 writes it (the cluster's host key), and
    root's cluster key for the login user, so this master can configure the node."""
    indented = "\n".join("    " + line for line in host_key.strip().splitlines())
    return (
        "#cloud-config\n"
        "ssh_deletekeys: true\n"
        "ssh_genkeytypes: []\n"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{indented}\n"
        f"  ed25519_public: {host_key_pub.strip()}\n"
        "ssh_authorized_keys:\n"
        f"  - {authorized_key.strip()}\n"
    )


def elastic_instances(ec2, config: dict, nodes: list[str] | None = None) -> list[dict]:
    """The cluster's elastic instances that exist, those of `nodes` only when given."""
    filters = [
        {"Name": "tag:awsc:cluster", "Values": [config["cluster"]]},
        {"Name": "tag:awsc:elastic", "Values": ["true"]},
        {"Name": "instance-state-name", "Values": ALIVE},
    ]
    if nodes is not None:
        filters.append({"Name": "tag:awsc:node", "Values": nodes})
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    found = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    # Checked here too: the fence must hold even where a filter would be ignored.
    return [
        i
        for i in found
        if tags_of(i).get("awsc:cluster") == config["cluster"]
        and tags_of(i).get("awsc:elastic") == "true"
        and (nodes is None or tags_of(i).get("awsc:node") in nodes)
    ]


def tags_of(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def terminate(ec2, config: dict, nodes: list[str] | None = None, ids: list[str] | None = None) -> list[str]:
    """Terminates the elastic instances of `nodes` (looked up now), or of `ids` once looked up with
    the cluster's tags; nothing for an empty list."""
    found = elastic_instances(ec2, config, nodes)
    doomed = [i["InstanceId"] for i in found if ids is None or i["InstanceId"] in ids]
    if doomed:
        ec2.terminate_instances(InstanceIds=doomed)
        log(f"terminated {', '.join(doomed)}")
    return doomed


def error_text(error: Exception) -> str:
    response = getattr(error, "response", None)
    if response:
        info = response.get("Error", {})
        return f"EC2 {info.get('Code', '')}: {info.get('Message', '')}".strip()
    return str(error) or type(error).__name__


# ---- resume -------------------------------------------------------------------------------------


def node_user_data(config: dict) -> str:
    """A new node's user data: this master's host key is the cluster's (every node has it)."""
    ssh = Path("/etc/ssh")
    return user_data(
        (ssh / "ssh_host_ed25519_key").read_text(),
        (ssh / "ssh_host_ed25519_key.pub").read_text(),
        Path(config["ssh_key"] + ".pub").read_text(),
    )


def launch(ec2, config: dict, nodes: list[str], data: str) -> dict[str, dict]:
    """One RunInstances for all `nodes`, then each instance named for its node."""
    request = launch_request(config, master_instance(ec2, config), len(nodes), data)
    launched = ec2.run_instances(**request)["Instances"]
    by_node = dict(zip(nodes, sorted(launched, key=lambda i: i["InstanceId"]), strict=True))
    for node, instance in by_node.items():
        name = {"Name": f"{config['cluster']}-{node}", "awsc:node": node}
        ec2.create_tags(Resources=[instance["InstanceId"]], Tags=tag_list(name))
    log("launched " + ", ".join(f"{node} {instance['InstanceId']}" for node, instance in by_node.items()))
    return by_node


def wait_running(ec2, by_node: dict[str, dict], deadline: float) -> dict[str, str]:
    """Private addresses of the nodes once their instances run."""
    ids = [i["InstanceId"] for i in by_node.values()]
    while time.monotonic() < deadline:
        found = {
            i["InstanceId"]: i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]
        }
        states = {iid: found[iid]["State"]["Name"] for iid in ids if iid in found}
        gone = [iid for iid, state in states.items() if state not in ("pending", "running")]
        if gone:
            raise RuntimeError(f"instance {', '.join(gone)} ended while starting")
        if all(states.get(iid) == "running" and found[iid].get("PrivateIpAddress") for iid in ids):
            return {node: found[i["InstanceId"]]["PrivateIpAddress"] for node, i in by_node.items()}
        time.sleep(2)
    raise TimeoutError("the instances did not start in time")


def wait_ssh(addresses: dict[str, str], deadline: float) -> list[str]:
    """The nodes whose sshd answers before the deadline."""
    waiting = dict(addresses)
    while waiting and time.monotonic() < deadline:
        for node, address in list(waiting.items()):
            try:
                with socket.create_connection((address, 22), timeout=3) as conn:
                    conn.settimeout(3)
                    if conn.recv(64).startswith(b"SSH-"):
                        del waiting[node]
            except OSError:
                pass
        if waiting:
            time.sleep(1)
    return [node for node in addresses if node not in waiting]


def inventory(config: dict, instances: list[dict], new: list[str]) -> dict:
    """The cluster as the aws_ec2 inventory (inventory/aws_ec2.yml) composes it, for a configure run
    from this master: private addresses; root with root's cluster key, the login user on new nodes
    (root's key is authorized for it in their user data)."""
    hosts: dict[str, dict] = {}
    groups: dict[str, list[str]] = {"master": [], "workers": [], "elastic": []}
    for instance in instances:
        tags = tags_of(instance)
        node = tags.get("awsc:node")
        if not node or instance["State"]["Name"] != "running":
            continue
        name = tags.get("Name", instance["InstanceId"])
        groups["master" if tags.get("awsc:role") == "master" else "workers"].append(name)
        if tags.get("awsc:elastic") == "true":
            groups["elastic"].append(name)
        hosts[name] = {
            "ansible_host": instance["PrivateIpAddress"],
            "ansible_user": config["login_user"] if node in new else "root",
            "ansible_become": node in new,
            "ansible_ssh_common_args": (
                f"-o StrictHostKeyChecking=yes -o HostKeyAlias=awsc-{config['cluster']}-{node}"
                f" -o UserKnownHostsFile={config['known_hosts']}"
            ),
            "awsc_cluster": config["cluster"],
            "awsc_node_name": node,
            "awsc_data_volume_id": tags.get("awsc:data-volume", ""),
            "awsc_image": tags.get("awsc:image", ""),
            "awsc_elastic": tags.get("awsc:elastic") == "true",
            "tags": tags,
            "launch_time": instance["LaunchTime"].isoformat()
            if hasattr(instance["LaunchTime"], "isoformat")
            else str(instance["LaunchTime"]),
        }
    cluster_group = "awsc_" + config["cluster"].replace("-", "_")
    return {
        "all": {
            "vars": {
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_private_key_file": config["ssh_key"],
            },
            "children": {
                "master": {"hosts": dict.fromkeys(groups["master"])},
                "workers": {"hosts": dict.fromkeys(groups["workers"])},
                "elastic": {"hosts": dict.fromkeys(groups["elastic"])},
                cluster_group: {"hosts": {name: None for name in groups["master"] + groups["workers"]}},
            },
            "hosts": hosts,
        }
    }


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host, summed over the run's plays."""
    totals: dict[str, dict[str, int]] = {}
    for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        for key, value in re.findall(r"(\w+)=(\d+)", counters):
            totals.setdefault(host, {}).setdefault(key, 0)
            totals[host][key] += int(value)
    return totals


def failed_task(output: str, host: str) -> str:
    """The name of the last task that failed on `host` in an Ansible log."""
    found = ""
    for task, body in re.findall(r"^TASK \[(.*?)\].*?\n(.*?)(?=^TASK \[|^PLAY RECAP|\Z)", output, re.M | re.S):
        if re.search(rf"^(fatal|failed): \[{re.escape(host)}\]", body, re.M):
            found = task
    return found


def configure(config: dict, instances: list[dict], new: dict[str, str]) -> dict[str, str]:
    """The same playbook and roles as every node got (configure.yml), run from this master on the
    cluster as it is now; returns {node: why} for the new nodes it did not configure."""
    run_dir = STATE_DIR / "elastic"
    run_dir.mkdir(parents=True, exist_ok=True)
    hosts = run_dir / "inventory.json"
    hosts.write_text(json.dumps(inventory(config, instances, list(new)), indent=1))
    bundle = Path(config["bundle"])
    env = dict(
        os.environ,
        PYTHONPATH=str(bundle),
        ANSIBLE_COLLECTIONS_PATH=str(bundle),
        ANSIBLE_CONFIG=str(config["ansible_cfg"]),
        ANSIBLE_HOME=str(run_dir / "ansible"),
        ANSIBLE_FORCE_COLOR="0",
        HOME="/root",
    )
    argv = [
        sys.executable,
        "-c",
        "import sys; from ansible.cli.playbook import main; sys.argv[0] = 'ansible-playbook'; main()",
        str(bundle / "ansible_collections/awsc/cluster/playbooks/configure.yml"),
        "-i",
        str(hosts),
        "-e",
        "@" + config["configure_vars"],
    ]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=config["resume_timeout"])
    output = proc.stdout + proc.stderr
    (LOG_DIR / f"elastic-configure-{stamp}.log").write_text(output)
    names = {node: f"{config['cluster']}-{node}" for node in new}
    counts = recap(output)
    failed = {}
    for node, host in names.items():
        result = counts.get(host)
        if result is None or result.get("failed", 0) or result.get("unreachable", 0):
            step = failed_task(output, host) or ("unreachable" if result and result.get("unreachable") else "")
            failed[node] = f"configure failed at {step!r} (log {LOG_DIR}/elastic-configure-{stamp}.log)"
    return failed


@contextmanager
def locked(name: str):
    """One resume at a time: a second waits, then configures its nodes with the first's."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with (STATE_DIR / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def resume(nodes: list[str]) -> int:
    config = load_config()
    deadline = time.monotonic() + config["resume_timeout"] - 30
    ec2 = ec2_client(config)
    with locked("resume"):
        # A node whose instance still exists (an earlier resume, a late suspend) starts afresh.
        terminate(ec2, config, nodes)
        try:
            by_node = launch(ec2, config, nodes, node_user_data(config))
        except Exception as error:  # capacity, quota, a type the zone does not offer, ...
            for node in nodes:
                node_down(node, f"launch failed: {error_text(error)}")
            return 1
        failed: dict[str, str] = {}
        try:
            addresses = wait_running(ec2, by_node, deadline)
            for node, address in addresses.items():
                set_node(node, nodeaddr=address, nodehostname=node)
            answering = wait_ssh(addresses, deadline)
            failed.update({n: "never answered SSH" for n in addresses if n not in answering})
            if answering:
                current = elastic_instances(ec2, config) + other_instances(ec2, config)
                failed.update(configure(config, current, {n: addresses[n] for n in answering}))
        except Exception as error:
            failed.update({node: error_text(error) for node in nodes if node not in failed})
        for node, why in failed.items():
            terminate(ec2, config, [node])
            node_down(node, why)
        log(f"resumed {', '.join(n for n in nodes if n not in failed) or 'nothing'}")
        return 1 if failed else 0


def other_instances(ec2, config: dict) -> list[dict]:
    """The master and the static workers (running), for the configure run's inventory."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:awsc:cluster", "Values": [config["cluster"]]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    found = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    return [i for i in found if tags_of(i).get("awsc:elastic") != "true"]


def suspend(nodes: list[str]) -> int:
    config = load_config()
    terminate(ec2_client(config), config, nodes)
    return 0


def resume_fail(nodes: list[str]) -> int:
    """slurmctld gave up on these (ResumeTimeout): nothing of theirs may keep billing."""
    config = load_config()
    terminate(ec2_client(config), config, nodes)
    for node in nodes:
        node_down(node, "did not join in time (ResumeTimeout)")
    return 0


# ---- reconcile ----------------------------------------------------------------------------------


def reconcile_plan(
    slurm: dict[str, tuple[str, str]], instances: list[dict], elastic: list[str], now: float, down_since: dict
) -> tuple[list[str], list[tuple[str, str, str]], list[str]]:
    """What reconcile does, decided from Slurm's and EC2's views: (instance ids to terminate,
    (node, scontrol state, why) to set, nodes down for a failed resume whose reason still shows).
    `down_since`: when awsc first saw each of those down (kept between runs)."""
    doomed, updates, waiting = [], [], []
    alive = set()
    for instance in instances:
        node = tags_of(instance).get("awsc:node")
        launched = instance["LaunchTime"].timestamp() if hasattr(instance["LaunchTime"], "timestamp") else now
        if node is None:
            if now - launched > UNNAMED_GRACE:
                doomed.append(instance["InstanceId"])
            continue
        state = slurm.get(node, ("", ""))[0]
        if node not in elastic or (powered_down(state) and not down(state)):
            doomed.append(instance["InstanceId"])
        else:
            alive.add(node)
    for node in elastic:
        state, reason = slurm.get(node, ("", ""))
        if not state or node in alive:
            continue
        if down(state):
            if now - down_since.get(node, now) < DOWN_SHOWN:
                waiting.append(node)
            else:
                # Back in service: powered down, to be started again for a job.
                updates.append((node, "resume" if powered_down(state) else "power_down_force", reason or "down"))
        elif not (powered_down(state) or powering_up(state)):
            updates.append((node, "power_down_force", "its instance is gone"))
    return doomed, updates, waiting


def down(state: str) -> bool:
    return state.rstrip("~#%!*$@^-") in ("down", "drain", "drng", "fail", "failg")


def reconcile() -> int:
    config = load_config()
    ec2 = ec2_client(config)
    slurm = slurm_nodes()
    memory_file = STATE_DIR / "reconcile.json"
    down_since = json.loads(memory_file.read_text()) if memory_file.exists() else {}
    now = time.time()
    instances = elastic_instances(ec2, config)
    doomed, updates, waiting = reconcile_plan(slurm, instances, config["nodes"], now, down_since)
    if doomed:
        terminate(ec2, config, ids=doomed)
        log(f"reconcile: terminated orphans {', '.join(doomed)}")
    for node, state, why in updates:
        log(f"reconcile: {node} {state} ({why})")
        set_node(node, state=state, reason=why[:200])
    memory_file.parent.mkdir(parents=True, exist_ok=True)
    memory_file.write_text(json.dumps({n: down_since.get(n, now) for n in waiting}))
    return 0


# ---- dead-man switch ----------------------------------------------------------------------------


def deadman_due(last_seen: float, now: float, after_minutes: float) -> bool:
    return now - last_seen >= after_minutes * 60


def deadman() -> int:
    """On an elastic worker: the controller unreachable for after_minutes -> power off."""
    config = json.loads(DEADMAN_CONFIG.read_text())
    state = STATE_DIR / "deadman.json"
    now = time.time()
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30, check=False)
    if ping.returncode == 0 and "UP" in ping.stdout:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"last_seen": now}))
        return 0
    boot = now - float(Path("/proc/uptime").read_text().split()[0])
    last_seen = json.loads(state.read_text())["last_seen"] if state.exists() else boot
    if deadman_due(max(last_seen, boot), now, config["after_minutes"]):
        log(f"deadman: the controller has not answered for {config['after_minutes']} minutes: powering off")
        subprocess.run(["systemctl", "poweroff"], check=False)
    else:
        log(f"deadman: the controller does not answer ({ping.stdout.strip() or ping.stderr.strip()})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="awsc-elastic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("resume", "suspend", "resume-fail"):
        sub.add_parser(command).add_argument("hostlist")
    sub.add_parser("reconcile")
    sub.add_parser("deadman")
    args = parser.parse_args(argv)
    if args.command == "deadman":
        return deadman()
    if args.command == "reconcile":
        return reconcile()
    # slurmctld keeps nothing its programs print: they log to a file of their own.
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    sys.stdout = sys.stderr = (LOG_DIR / "elastic.log").open("a", buffering=1)
    log(f"{args.command} {args.hostlist}")
    nodes = expand(args.hostlist)
    try:
        return {"resume": resume, "suspend": suspend, "resume-fail": resume_fail}[args.command](nodes)
    except Exception as error:
        log(f"{args.command} {args.hostlist} failed: {error_text(error)}")
        raise


if __name__ == "__main__":
    sys.exit(main())
