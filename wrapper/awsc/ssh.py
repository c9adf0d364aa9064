"""ssh and scp to a cluster's nodes with its key and login user; workers through the master.

The login user comes from the instances' ``awsc:user`` tag, the key from the key pair: awsc's own
(``awsc-NAME``: ``$XDG_CONFIG_HOME/awsc/keys/NAME.pem``) or, for a key pair of the user's, their
ssh agent and default keys. A worker without a public address is reached through the master
(a ProxyCommand that uses the same key). Host keys are not recorded, as in ansible.cfg: instances
get new addresses on every start. ``AWSC_SSH`` and ``AWSC_SCP`` name other ssh/scp programs;
``AWSC_CONNECT=private`` uses the nodes' private addresses (inside the VPC, the local cloud), as the
inventory does.
"""

import os
import shlex
import subprocess

from awsc import paths
from awsc.cloud import Node
from awsc.errors import AwscError

OPTIONS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ServerAliveInterval=30",
]


def ssh_program() -> str:
    return os.environ.get("AWSC_SSH", "ssh")


def scp_program() -> str:
    return os.environ.get("AWSC_SCP", "scp")


def find_node(cluster: str, members: list[Node], node: str | None) -> Node:
    wanted = node or "master"
    for member in members:
        if wanted in (member.node, member.instance_id, f"{cluster}-{member.node}"):
            if member.state != "running":
                raise AwscError(f"{cluster}'s {member.node} is {member.state}: `awsc start {cluster}` first.")
            return member
    names = ", ".join(m.node for m in members)
    raise AwscError(f"Cluster {cluster} has no node '{wanted}' (its nodes: {names}).")


def _identity(cluster: str, node: Node) -> list[str]:
    if node.key_name == f"awsc-{cluster}":
        key = paths.key_file(cluster)
        if not key.exists():
            raise AwscError(f"The cluster's private key {key} is missing: restore it, or `awsc down {cluster}`.")
        return ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    return []


def connection(cluster: str, members: list[Node], node: Node, connect_timeout: int | None = None) -> list[str]:
    """ssh options that reach `node`: key, user-independent options and, if needed, the jump."""
    options = [*OPTIONS, *_identity(cluster, node)]
    if connect_timeout:
        options += ["-o", f"ConnectTimeout={connect_timeout}"]
    if not node.public_ip and not private():
        master = next((m for m in members if m.role == "master"), None)
        if master is None or not master.public_ip:
            raise AwscError(f"{cluster}'s {node.node} has no public address and the master none either.")
        jump = [ssh_program(), *options, "-W", "%h:%p", f"{master.user}@{master.public_ip}"]
        options += ["-o", "ProxyCommand=" + shlex.join(jump)]
    return options


def private() -> bool:
    """AWSC_CONNECT=private: nodes are reached at their private address (as the inventory does)."""
    return os.environ.get("AWSC_CONNECT") == "private"


def address(node: Node) -> str:
    if private():
        return node.private_ip or node.instance_id
    return node.public_ip or node.private_ip or node.instance_id


def ssh_command(cluster: str, members: list[Node], node: Node, command: list[str], **kw) -> list[str]:
    argv = [ssh_program(), *connection(cluster, members, node, **kw), f"{node.user}@{address(node)}"]
    if command:
        argv += ["--", *command]
    return argv


def scp_command(cluster: str, members: list[Node], node: Node, sources: list[str], target: str) -> list[str]:
    return [scp_program(), "-r", *connection(cluster, members, node), *sources, target]


def remote(node: Node, path: str) -> str:
    return f"{node.user}@{address(node)}:{path}"


def run(argv: list[str]) -> int:
    return subprocess.call(argv)


def capture(argv: list[str], timeout: int = 30) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 255, "timed out"
    except FileNotFoundError:
        return 127, f"{argv[0]} not found"
    return proc.returncode, (proc.stdout if proc.returncode == 0 else proc.stderr or proc.stdout).strip()
