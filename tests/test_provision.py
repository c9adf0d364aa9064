"""provision.yml and terminate.yml against the EC2 emulator: what a cluster is made of,
that re-runs change nothing, growing and shrinking, the inventory, and tear-down."""

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import (
    CALLER_CIDR,
    NEWEST_DEBIAN_AMI,
    REPO,
    VENV_BIN,
    by_node,
    instances,
    isolated_env,
    provision,
    run_playbook,
    shutdown_behaviour,
    tagged_resources,
    tags,
    terminate,
)


@pytest.fixture(scope="module")
def module_env(emulator, tmp_path_factory):
    return isolated_env(tmp_path_factory.mktemp("home"), emulator.endpoint)


@pytest.fixture(scope="module")
def alpha(module_env):
    """Cluster 'alpha': a t3.small master and two t3.micro workers, provisioned once; gone
    afterwards even when a test fails (terminate changes nothing once the tests took it down)."""
    yield provision(module_env, "alpha", workers=2, master_instance_type="t3.small")
    terminate(module_env, "alpha", delete_volume=True)


def inventory(env, cluster=None) -> tuple[dict[str, set[str]], dict[str, dict]]:
    """Groups (name -> host names) and host vars, as `ansible-inventory --list -y` reports them."""
    env = dict(env, **({"AWSC_CLUSTER": cluster} if cluster else {}))
    out = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "--list", "-y"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups: dict[str, set[str]] = {}
    hostvars: dict[str, dict] = {}

    def walk(group: str, node: dict) -> None:
        for host, variables in (node.get("hosts") or {}).items():
            groups.setdefault(group, set()).add(host)
            hostvars.setdefault(host, {}).update(variables or {})
        for child, child_node in (node.get("children") or {}).items():
            walk(child, child_node or {})

    walk("all", yaml.safe_load(out)["all"])
    return groups, hostvars


def test_provision_creates_master_workers_key_group_and_volume(alpha, ec2, module_env):
    nodes = by_node(ec2, "alpha")
    assert sorted(nodes) == ["master", "node001", "node002"]

    for node, inst in nodes.items():
        t = tags(inst)
        role = "master" if node == "master" else "worker"
        assert t["Name"] == f"alpha-{node}"
        assert t["awsc:cluster"] == "alpha"
        assert t["awsc:role"] == role
        assert inst["ImageId"] == NEWEST_DEBIAN_AMI
        assert inst["InstanceType"] == ("t3.small" if role == "master" else "t3.micro")
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        # The guard ends the cluster by powering its nodes off: EC2 then terminates them (on_limit).
        assert shutdown_behaviour(ec2, inst) == "terminate"
        assert inst["KeyName"] == "awsc-alpha"
        # All nodes share one placement, so the data volume can follow the master.
        assert inst["Placement"]["AvailabilityZone"] == "us-east-1a"
        root = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"]]
        assert root, inst["BlockDeviceMappings"]
        volume = ec2.describe_volumes(VolumeIds=[root[0]["Ebs"]["VolumeId"]])["Volumes"][0]
        assert volume["Encrypted"] is True

    # Security group: SSH from the caller, everything from the group itself, nothing else.
    group = ec2.describe_security_groups(GroupNames=["awsc-alpha"])["SecurityGroups"][0]
    assert tags(group)["awsc:cluster"] == "alpha"
    rules = group["IpPermissions"]
    assert len(rules) == 2, rules
    ssh = next(r for r in rules if r["IpProtocol"] == "tcp")
    assert (ssh["FromPort"], ssh["ToPort"]) == (22, 22)
    assert [r["CidrIp"] for r in ssh["IpRanges"]] == [CALLER_CIDR]
    assert not ssh.get("UserIdGroupPairs")
    internal = next(r for r in rules if r["IpProtocol"] == "-1")
    assert [p["GroupId"] for p in internal["UserIdGroupPairs"]] == [group["GroupId"]]
    assert not internal.get("IpRanges")
    for inst in nodes.values():
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [group["GroupId"]]

    # The key pair's private key is on disk, 0600, and never in the output.
    key_file = module_env["XDG_CONFIG_HOME"] + "/awsc/keys/alpha.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    with open(key_file) as f:
        private_key = f.read()
    assert "PRIVATE KEY" in private_key
    body = private_key.splitlines()[1]
    assert body not in alpha.out
    assert ec2.describe_key_pairs(KeyNames=["awsc-alpha"])["KeyPairs"]

    # Every node gets the cluster's host key from its user data (cloud-init's ssh_keys), and the
    # cluster's known_hosts holds its public half for every node's alias: the first connection is
    # already checked. The private half is 0600 here and in no output.
    keys_dir = Path(module_env["XDG_CONFIG_HOME"]) / "awsc/keys"
    host_key = keys_dir / "alpha-host"
    assert stat.S_IMODE(os.stat(host_key).st_mode) == 0o600
    host_public = " ".join(keys_dir.joinpath("alpha-host.pub").read_text().split()[:2])
    for inst in nodes.values():
        encoded = ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")
        user_data = base64.b64decode(encoded["UserData"]["Value"]).decode()
        assert user_data.startswith("#cloud-config\n")
        keys = yaml.safe_load(user_data)["ssh_keys"]
        assert keys["ed25519_private"].strip() == host_key.read_text().strip()
        assert keys["ed25519_public"].split()[:2] == host_public.split()
    assert (keys_dir / "alpha.known_hosts").read_text() == f"awsc-alpha-* {host_public}\n"
    assert host_key.read_text().splitlines()[1] not in alpha.out

    # The data volume: encrypted, tagged, attached to the master, which names it in a tag.
    master = nodes["master"]
    # The guard's settings, kept on the master for configure (and `awsc up` again): the defaults.
    guard = ("awsc:idle-shutdown", "awsc:ttl", "awsc:budget", "awsc:on-limit")
    assert {k: v for k, v in tags(master).items() if k in guard} == {
        "awsc:idle-shutdown": "60",
        "awsc:ttl": "",
        "awsc:budget": "",
        "awsc:on-limit": "terminate",
    }
    volume_id = tags(master)["awsc:data-volume"]
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["Encrypted"] is True
    assert volume["Size"] == 10
    assert tags(volume)["awsc:cluster"] == "alpha"
    assert tags(volume)["awsc:role"] == "data"
    assert [(a["InstanceId"], a["Device"]) for a in volume["Attachments"]] == [(master["InstanceId"], "/dev/xvdf")]


def test_second_provision_changes_nothing(alpha, ec2, module_env):
    before = {node: i["InstanceId"] for node, i in by_node(ec2, "alpha").items()}
    volumes = len(ec2.describe_volumes()["Volumes"])
    run = provision(module_env, "alpha", workers=2, master_instance_type="t3.small")
    assert run.changed == 0, run.out
    assert {node: i["InstanceId"] for node, i in by_node(ec2, "alpha").items()} == before
    assert len(ec2.describe_volumes()["Volumes"]) == volumes


def test_growing_adds_the_next_workers_and_shrinking_removes_the_highest(alpha, ec2, module_env):
    before = {node: i["InstanceId"] for node, i in by_node(ec2, "alpha").items()}

    provision(module_env, "alpha", workers=4, master_instance_type="t3.small")
    grown = {node: i["InstanceId"] for node, i in by_node(ec2, "alpha").items()}
    assert sorted(grown) == ["master", "node001", "node002", "node003", "node004"]
    assert {n: grown[n] for n in before} == before
    assert provision(module_env, "alpha", workers=4, master_instance_type="t3.small").changed == 0

    provision(module_env, "alpha", workers=1, master_instance_type="t3.small")
    shrunk = {node: i["InstanceId"] for node, i in by_node(ec2, "alpha").items()}
    assert shrunk == {"master": before["master"], "node001": before["node001"]}

    provision(module_env, "alpha", workers=2, master_instance_type="t3.small")
    assert sorted(by_node(ec2, "alpha")) == ["master", "node001", "node002"]


def test_inventory_groups_one_cluster_and_nothing_from_another(alpha, ec2, module_env):
    provision(module_env, "beta", workers=1)
    # ansible-inventory connects to nothing: safe to show the public addresses.
    groups, hostvars = inventory(dict(module_env, AWSC_CONNECT=""), cluster="alpha")
    assert groups["master"] == {"alpha-master"}
    assert groups["workers"] == {"alpha-node001", "alpha-node002"}
    assert groups["awsc_alpha"] == {"alpha-master", "alpha-node001", "alpha-node002"}
    assert not any(h.startswith("beta") for h in hostvars)

    master = by_node(ec2, "alpha")["master"]
    assert hostvars["alpha-master"]["ansible_host"] == master["PublicIpAddress"]
    assert hostvars["alpha-master"]["ansible_user"] == "admin"
    assert hostvars["alpha-master"]["awsc_node_name"] == "master"
    assert hostvars["alpha-master"]["awsc_data_volume_id"] == tags(master)["awsc:data-volume"]
    assert hostvars["alpha-node002"]["awsc_node_name"] == "node002"
    # Host keys are checked strictly, against the cluster's known_hosts, under each node's alias.
    known = module_env["XDG_CONFIG_HOME"] + "/awsc/keys/alpha.known_hosts"
    assert hostvars["alpha-node002"]["ansible_ssh_common_args"].split() == [
        "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=awsc-alpha-node002", "-o", f"UserKnownHostsFile={known}"
    ]  # fmt: skip

    _, private = inventory(module_env, cluster="alpha")
    assert private["alpha-master"]["ansible_host"] == master["PrivateIpAddress"]

    # Without AWSC_CLUSTER every cluster is listed, each in its own group.
    groups, _ = inventory(module_env)
    assert groups["awsc_beta"] == {"beta-master", "beta-node001"}
    assert groups["awsc_alpha"] == {"alpha-master", "alpha-node001", "alpha-node002"}
    terminate(module_env, "beta", delete_volume=True)


def test_terminate_keeps_the_volume_and_reuse_reattaches_it(alpha, ec2, module_env):
    volume_id = tags(by_node(ec2, "alpha")["master"])["awsc:data-volume"]

    run = terminate(module_env, "alpha")
    assert instances(ec2, "alpha") == []
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["awsc-alpha"]}])[
        "SecurityGroups"
    ]
    assert not ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": ["awsc-alpha"]}])["KeyPairs"]
    assert not os.path.exists(module_env["XDG_CONFIG_HOME"] + "/awsc/keys/alpha.pem")
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["State"] == "available"
    assert tagged_resources(ec2, "alpha") == [volume_id]
    assert f"Still billing for cluster alpha: volume {volume_id} (10 GiB)" in " ".join(run.out.split())

    again = terminate(module_env, "alpha")
    assert again.changed == 0, again.out

    provision(module_env, "alpha", workers=1, volume_id=volume_id)
    master = by_node(ec2, "alpha")["master"]
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert [a["InstanceId"] for a in volume["Attachments"]] == [master["InstanceId"]]
    assert tags(master)["awsc:data-volume"] == volume_id
    assert (
        len(
            ec2.describe_volumes(
                Filters=[
                    {"Name": "tag:awsc:role", "Values": ["data"]},
                    {"Name": "tag:awsc:cluster", "Values": ["alpha"]},
                ]
            )["Volumes"]
        )
        == 1
    )

    run = terminate(module_env, "alpha", delete_volume=True)
    assert tagged_resources(ec2, "alpha") == []
    assert "Nothing of cluster alpha is left." in run.out


def test_spot_workers_run_at_the_max_price(ec2, env):
    provision(env, "spotty", workers=2, spot_max_price="0.0125")
    nodes = by_node(ec2, "spotty")
    assert sorted(nodes) == ["master", "node001", "node002"]
    assert nodes["master"].get("InstanceLifecycle") is None
    # The spot market and its maximum come from the cluster's launch template; IMDSv2, tags and
    # the encrypted root come with the launch itself, not after it.
    template = ec2.describe_launch_templates(LaunchTemplateNames=["awsc-spotty-spot"])["LaunchTemplates"][0]
    assert tags(template)["awsc:cluster"] == "spotty"
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    assert data["InstanceMarketOptions"]["MarketType"] == "spot"
    assert float(data["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"]) == pytest.approx(0.0125)
    for node in ("node001", "node002"):
        worker = nodes[node]
        assert worker["InstanceLifecycle"] == "spot"
        assert worker["MetadataOptions"]["HttpTokens"] == "required"
        assert tags(worker)["awsc:role"] == "worker"
    run = provision(env, "spotty", workers=2, spot_max_price="0.0125")
    assert run.changed == 0
    assert "ModifyInstanceMetadataOptions" not in run.out and "require IMDSv2" not in run.out
    # Growing describes the same market again: the template keeps its one version.
    provision(env, "spotty", workers=3, spot_max_price="0.0125")
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
    assert len(versions["LaunchTemplateVersions"]) == 1
    terminate(env, "spotty", delete_volume=True)
    assert tagged_resources(ec2, "spotty") == []
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []


def test_own_public_key_is_imported_and_existing_key_pair_used(ec2, env, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    provision(env, "ownkey", workers=0, public_key_file=str(tmp_path / "id.pub"))
    master = by_node(ec2, "ownkey")["master"]
    assert master["KeyName"] == "awsc-ownkey"
    assert not os.path.exists(env["XDG_CONFIG_HOME"] + "/awsc/keys/ownkey.pem")
    terminate(env, "ownkey", delete_volume=True)

    ec2.import_key_pair(KeyName="users-key", PublicKeyMaterial=(tmp_path / "id.pub").read_bytes())
    provision(env, "usekey", workers=0, key_name="users-key")
    assert by_node(ec2, "usekey")["master"]["KeyName"] == "users-key"
    terminate(env, "usekey", delete_volume=True)
    # The user's own key pair is theirs: terminate leaves it alone.
    assert ec2.describe_key_pairs(KeyNames=["users-key"])["KeyPairs"]


def test_caller_ip_is_looked_up_for_ssh(ec2, env, tmp_path):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"203.0.113.9\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provision(env, "myip", workers=0, ssh_cidr="", ssh_cidr_lookup_url=f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
    group = ec2.describe_security_groups(GroupNames=["awsc-myip"])["SecurityGroups"][0]
    ssh = next(r for r in group["IpPermissions"] if r["IpProtocol"] == "tcp")
    assert [r["CidrIp"] for r in ssh["IpRanges"]] == ["203.0.113.9/32"]
    terminate(env, "myip", delete_volume=True)


def test_hundred_workers_in_one_run(ec2, env):
    provision(env, "big", workers=100, ssh_cidr=CALLER_CIDR)
    nodes = by_node(ec2, "big")
    assert len(nodes) == 101
    assert sorted(n for n in nodes if n != "master") == [f"node{i:03d}" for i in range(1, 101)]
    assert len({tags(i)["Name"] for i in nodes.values()}) == 101
    terminate(env, "big", delete_volume=True)
    assert tagged_resources(ec2, "big") == []


def test_galaxy_build_contains_roles_and_playbooks_addressable_by_fqcn(env, tmp_path):
    ansible_bin = VENV_BIN
    subprocess.run(
        [str(ansible_bin / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)],
        cwd=REPO / "collections/ansible_collections/awsc/cluster",
        env=env,
        check=True,
        capture_output=True,
    )
    tarball = next(tmp_path.glob("awsc-cluster-*.tar.gz"))
    listing = subprocess.run(["tar", "tzf", str(tarball)], capture_output=True, text=True, check=True).stdout
    assert "playbooks/provision.yml" in listing
    assert "playbooks/tasks/plan.yml" in listing
    assert "roles/" in listing
    installed = tmp_path / "installed"
    # Outside the repository, with only the installed collection (the repository's ansible.cfg
    # would point at its own copy, and ansible-galaxy would call it installed already).
    empty_config = tmp_path / "ansible.cfg"
    empty_config.write_text("[defaults]\n")
    outside = dict(env, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_CONFIG=str(empty_config))
    subprocess.run(
        [
            str(ansible_bin / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "-p",
            str(installed),
            str(tarball),
        ],
        cwd=tmp_path,
        env=outside,
        check=True,
        capture_output=True,
    )
    assert (installed / "ansible_collections/awsc/cluster/playbooks/provision.yml").is_file()
    assert (installed / "ansible_collections/awsc/cluster/roles/slurm/tasks/main.yml").is_file()
    check = subprocess.run(
        [str(ansible_bin / "ansible-playbook"), "awsc.cluster.provision", "--syntax-check", "-e", "name=x"],
        cwd=tmp_path,
        env=outside,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_stop_and_start(ec2, env):
    # on_limit=stop: a node that powers itself off (the guard) is stopped, not terminated.
    provision(env, "sleepy", workers=1, on_limit="stop", idle_shutdown=30, ttl="1.5")
    for inst in instances(ec2, "sleepy"):
        assert shutdown_behaviour(ec2, inst) == "stop"
    run = run_playbook("playbooks/stop.yml", env, name="sleepy")
    assert {i["State"]["Name"] for i in instances(ec2, "sleepy")} == {"stopped"}
    assert "its instances no longer bill, but its 3 EBS volume(s) (30 GiB)" in " ".join(run.out.split())
    stopped_launch = {i["InstanceId"]: i["LaunchTime"] for i in instances(ec2, "sleepy")}
    run_playbook("playbooks/start.yml", env, name="sleepy")
    assert {i["State"]["Name"] for i in instances(ec2, "sleepy")} == {"running"}
    # As on EC2, a start is a new launch time (the agent tells a node powered off since by it).
    assert all(i["LaunchTime"] > stopped_launch[i["InstanceId"]] for i in instances(ec2, "sleepy"))
    terminate(env, "sleepy", delete_volume=True)
    assert tagged_resources(ec2, "sleepy") == []


def test_workers_left_unnamed_by_an_interrupted_run_are_named_not_duplicated(ec2, env):
    provision(env, "resume", workers=1)
    # A run stopped between launching workers and naming them leaves them tagged but unnamed.
    launched = ec2.run_instances(
        ImageId=NEWEST_DEBIAN_AMI,
        InstanceType="t3.micro",
        MinCount=2,
        MaxCount=2,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "awsc:cluster", "Value": "resume"}, {"Key": "awsc:role", "Value": "worker"}],
            }
        ],
    )["Instances"]
    provision(env, "resume", workers=3)
    nodes = by_node(ec2, "resume")
    assert sorted(nodes) == ["master", "node001", "node002", "node003"]
    assert {nodes["node002"]["InstanceId"], nodes["node003"]["InstanceId"]} == {i["InstanceId"] for i in launched}
    terminate(env, "resume", delete_volume=True)
