"""ssh and scp to a cluster's nodes with its key and login user; workers through the master.

The login user comes from the instances' ``awsc:user`` tag, the key from the key pair: awsc's own
(``awsc-NAME``: ``$XDG_CONFIG_HOME/awsc/keys/NAME.pem``) or, for a key pair of the user's, their
ssh agent and default keys. A worker without a public address is reached through the master
(a ProxyCommand that uses the same key). Host keys are checked strictly, as the inventory does: each
node is known by the alias ``awsc-NAME-NODE`` (its address changes on every start) in the cluster's
known_hosts, which holds the host key provision gave the nodes at launch; ``awsc trust-node``
adds the key of a node rebuilt by hand. ``AWSC_SSH`` and ``AWSC_SCP`` name other ssh/scp programs;
``AWSC_CONNECT=private`` uses the nodes' private addresses (inside the VPC, the local cloud), as the
inventory does.
"""

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from awsc import paths
from awsc.cloud import Node
from awsc.errors import AwscError

OPTIONS = ["-o", "LogLevel=ERROR", "-o", "ServerAliveInterval=30"]
# What ssh says when a node's host key is not the one known for it.
REFUSED = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")


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


def host_key(cluster: str, node: Node, known_hosts: Path | None = None) -> list[str]:
    """Strict checking of `node`'s host key against the cluster's known_hosts."""
    return [
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"HostKeyAlias=awsc-{cluster}-{node.node}",
        "-o", f"UserKnownHostsFile={known_hosts or paths.known_hosts_file(cluster)}",
    ]  # fmt: skip


def connection(
    cluster: str,
    members: list[Node],
    node: Node,
    connect_timeout: int | None = None,
    known_hosts: Path | None = None,
    batch: bool = False,
) -> list[str]:
    """ssh options that reach `node`: key, host key, user-independent options and, if needed, the jump.

    `known_hosts` replaces the cluster's file for `node` itself (never for the master it jumps through);
    `batch` never asks for anything (a probe, not a session)."""
    common = [*OPTIONS, *_identity(cluster, node)]
    if batch:
        common += ["-o", "BatchMode=yes"]
    if connect_timeout:
        common += ["-o", f"ConnectTimeout={connect_timeout}"]
    options = [*common, *host_key(cluster, node, known_hosts)]
    if not node.public_ip and not private():
        master = next((m for m in members if m.role == "master"), None)
        if master is None or not master.public_ip:
            raise AwscError(f"{cluster}'s {node.node} has no public address and the master none either.")
        jump = [ssh_program(), *common, *host_key(cluster, master), "-W", "%h:%p", f"{master.user}@{master.public_ip}"]
        options += ["-o", "ProxyCommand=" + shlex.join(jump)]
    return options


def config_block(cluster: str, members: list[Node]) -> str:
    """An OpenSSH config for the cluster's running nodes, each as Host NAME-NODE: the same key,
    user, host key checks and jump through the master as `awsc ssh`."""
    master = next((m for m in members if m.role == "master"), None)
    lines = [f"# awsc cluster {cluster}: `ssh -F THIS_FILE {cluster}-master`, or Include it in ~/.ssh/config."]
    for node in sorted((m for m in members if m.state == "running"), key=lambda m: (m.role != "master", m.node)):
        options = [*_identity(cluster, node), *host_key(cluster, node)]
        settings = [("HostName", address(node)), ("User", node.user)]
        settings += [
            ("IdentityFile", value) if flag == "-i" else tuple(value.split("=", 1))
            for flag, value in zip(options[::2], options[1::2], strict=True)
        ]
        if not node.public_ip and not private() and master and node is not master:
            settings.append(("ProxyJump", f"{cluster}-{master.node}"))
        lines.append(f"Host {cluster}-{node.node}")
        lines += [f'    {key} "{value}"' if " " in value else f"    {key} {value}" for key, value in settings]
    return "\n".join(lines) + "\n"


def refused_hint(cluster: str, node: str) -> str:
    """What to say when ssh refused `node` for its host key."""
    return (
        f"{cluster}'s {node} did not show the host key awsc gave it at launch, so awsc did not log in: "
        f"someone may be in the way. If you rebuilt {node} yourself, `awsc trust-node {cluster} {node}` "
        "accepts the key it shows now."
    )


def refused(output: str) -> bool:
    return any(sign in output for sign in REFUSED)


def trust(cluster: str, members: list[Node], node: Node) -> str:
    """Adds the host key `node` shows now to the cluster's known_hosts; returns its line."""
    with tempfile.TemporaryDirectory() as folder:
        seen = Path(folder) / "known_hosts"
        argv = ssh_command(cluster, members, node, ["true"], connect_timeout=10, known_hosts=seen, batch=True)
        # accept-new (first, so it wins) records the key before logging in; the login itself may fail.
        argv[1:1] = ["-o", "StrictHostKeyChecking=accept-new"]
        _, output = capture(argv)
        lines = seen.read_text().strip() if seen.exists() else ""
    if not lines:
        raise AwscError(f"Could not reach {cluster}'s {node.node} to read its host key: {output}")
    with paths.known_hosts_file(cluster).open("a") as known:
        known.write(lines + "\n")
    return lines


def private() -> bool:
    """AWSC_CONNECT=private: nodes are reached at their private address (as the inventory does)."""
    return os.environ.get("AWSC_CONNECT") == "private"


def address(node: Node) -> str:
    if private():
        return node.private_ip or node.instance_id
    return node.public_ip or node.private_ip or node.instance_id


def ssh_command(cluster: str, members: list[Node], node: Node, command: list[str], **kw) -> list[str]:
    """ssh to `node`, then `command`; keywords go to connection()."""
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


def run_checked(cluster: str, members: list[Node], node: Node, argv: list[str]) -> int:
    """Runs ssh or scp; when it could not connect because of the host key, says so and what to do."""
    rc = run(argv)
    if rc == 255:
        probe = ssh_command(cluster, members, node, ["true"], connect_timeout=10, batch=True)
        if refused(capture(probe)[1]):
            raise AwscError(refused_hint(cluster, node.node))
    return rc


def capture(argv: list[str], timeout: int = 30) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 255, "timed out"
    except FileNotFoundError:
        return 127, f"{argv[0]} not found"
    return proc.returncode, (proc.stdout if proc.returncode == 0 else proc.stderr or proc.stdout).strip()
