"""Reaching the nodes: `awsc ssh`, `put`, `get`, `ssh-config`, `trust-node`."""

from typing import Annotated

import typer

from awsc.commands.base import (
    Local,
    Name,
    Region,
    app,
    command,
    members_of,
    place_for,
)
from awsc.errors import AwscError

# ---- ssh / put / get ----------------------------------------------------------------------------


NODE_PATTERN = r"master|node[0-9]+|i-[0-9a-f]+"


@app.command()
@command
def ssh(
    name: Name,
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NODE] [-- COMMAND...]", help="master (default), node001, ... then a command."),
    ] = None,
    region: Region = None,
    show: Annotated[bool, typer.Option("--print", help="Print the ssh command instead of running it.")] = False,
    local: Local = False,
) -> None:
    """Log in to a node, or run a command there.

    The master by default.
    NODE is master, nodeNNN or an instance id; anything else starts the command.
    """
    where = place_for(name, local, region)
    import re
    import shlex

    from awsc import ssh as ssh_

    args = list(args or [])
    node = args.pop(0) if args and re.fullmatch(NODE_PATTERN, args[0]) else None
    if args[:1] == ["--"]:
        args.pop(0)
    region = where.region
    members = members_of(region, name)
    target = ssh_.find_node(name, members, node)
    argv = ssh_.ssh_command(name, members, target, args)
    if show:
        typer.echo(shlex.join(argv))
        return
    raise typer.Exit(ssh_.run_checked(name, members, target, argv))


@app.command()
@command
def put(
    name: Name,
    files: Annotated[list[str], typer.Argument(help="Local files, then the remote path.")],
    node: Annotated[str | None, typer.Option("--node", help="master (default), node001, ...")] = None,
    region: Region = None,
    show: Annotated[bool, typer.Option("--print", help="Print the scp command instead of running it.")] = False,
    on_local_cloud: Local = False,
) -> None:
    """Copy local files to a node.

    awsc put NAME LOCAL... REMOTE
    """
    where = place_for(name, on_local_cloud, region)
    import shlex

    from awsc import ssh as ssh_

    if len(files) < 2:
        raise AwscError("Usage: awsc put NAME LOCAL... REMOTE")
    region = where.region
    members = members_of(region, name)
    target = ssh_.find_node(name, members, node)
    argv = ssh_.scp_command(name, members, target, files[:-1], ssh_.remote(target, files[-1]))
    if show:
        typer.echo(shlex.join(argv))
        return
    raise typer.Exit(ssh_.run_checked(name, members, target, argv))


@app.command()
@command
def get(
    name: Name,
    remote: Annotated[str, typer.Argument(help="Path on the node.")],
    local: Annotated[str, typer.Argument(help="Local path.")] = ".",
    node: Annotated[str | None, typer.Option("--node", help="master (default), node001, ...")] = None,
    region: Region = None,
    show: Annotated[bool, typer.Option("--print", help="Print the scp command instead of running it.")] = False,
    on_local_cloud: Local = False,
) -> None:
    """Copy files from a node.

    awsc get NAME REMOTE [LOCAL]
    """
    where = place_for(name, on_local_cloud, region)
    import shlex

    from awsc import ssh as ssh_

    region = where.region
    members = members_of(region, name)
    target = ssh_.find_node(name, members, node)
    argv = ssh_.scp_command(name, members, target, [ssh_.remote(target, remote)], local)
    if show:
        typer.echo(shlex.join(argv))
        return
    raise typer.Exit(ssh_.run_checked(name, members, target, argv))


@app.command("ssh-config")
@command
def ssh_config(name: Name, region: Region = None, local: Local = False) -> None:
    """Print an OpenSSH config for the cluster's nodes: ssh NAME-master, rsync, scp, editors.

    awsc ssh-config NAME > ~/.ssh/awsc-NAME.conf, then add `Include awsc-NAME.conf` to ~/.ssh/config.
    """
    where = place_for(name, local, region)
    from awsc import ssh as ssh_

    typer.echo(ssh_.config_block(name, members_of(where.region, name)), nl=False)


@app.command("trust-node")
@command
def trust_node(
    name: Name,
    node: Annotated[str, typer.Argument(help="master, node001, ...")],
    region: Region = None,
    local: Local = False,
) -> None:
    """Accept the host key a node shows now: only for a node you rebuilt yourself.

    awsc gives every node the cluster's host key at launch and refuses any other.
    """
    where = place_for(name, local, region)
    from awsc import ssh as ssh_

    region = where.region
    members = members_of(region, name)
    target = ssh_.find_node(name, members, node)
    line = ssh_.trust(name, members, target)
    typer.echo(f"{name}'s {target.node} is now known by the key it shows: {line.split()[-1][:24]}…")
