"""The `awsc` command, driven through typer's CliRunner and as a subprocess, against the EC2 emulator.

Clusters are provisioned only (--provision-only): the emulator's instances are not machines to
configure. ssh and scp are replaced by a script that records its arguments and fails as an
unreachable host does (AWSC_SSH/AWSC_SCP), so no packet leaves 127.0.0.1.
"""

import json
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from awsc import pricing, schemas
from awsc.cli import app
from awsc.runner import only_environment
from conftest import CALLER_CIDR, DATA, VENV_BIN, by_node, isolated_env, tagged_resources, tags, valid
from typer.testing import CliRunner

FAKE_SSH = """#!/bin/sh
echo "$0 $*" >> "$(dirname "$0")/ssh.log"
echo "ssh: connect to host 192.0.2.1 port 22: Connection refused" >&2
exit 255
"""


def cli_env(home: Path, endpoint: str | None) -> dict[str, str]:
    env = isolated_env(home, endpoint)
    fake = home / "bin" / "fake-ssh"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text(FAKE_SSH)
    fake.chmod(0o755)
    env.update(AWSC_SSH=str(fake), AWSC_SCP=str(fake), COLUMNS="200", XDG_CACHE_HOME=str(home / ".cache"))
    return env


def awsc(env: dict[str, str], *args: str, input: str | None = None):
    with only_environment(env):
        result = CliRunner().invoke(app, list(args), input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(env, *args, input=None):
    result = awsc(env, *args, input=input)
    assert result.exit_code == 0, f"awsc {' '.join(args)}: {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def refused(env, *args, input=None) -> str:
    """The command fails with exit code 1 and exactly one line on stderr, which is returned."""
    result = awsc(env, *args, input=input)
    assert result.exit_code == 1, f"{result.exit_code}\n{result.stdout}\n{result.stderr}"
    # A question awsc asked (and got no yes for) may precede the line.
    lines = [line for line in result.stderr.strip().splitlines() if not line.rstrip().endswith("[y/N]:")]
    assert len(lines) == 1 and lines[0].startswith("awsc: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def menv(emulator, tmp_path_factory):
    return cli_env(tmp_path_factory.mktemp("home"), emulator.endpoint)


@pytest.fixture
def fenv(emulator, tmp_path):
    return cli_env(tmp_path / "home", emulator.endpoint)


# ---- help, config --------------------------------------------------------------------------------


def test_help_lists_the_commands_without_loading_ansible_runner_or_boto3(fenv):
    out = ok(fenv, "--help").stdout
    for name in (
        "up",
        "down",
        "stop",
        "start",
        "ls",
        "status",
        "ssh",
        "put",
        "get",
        "add-node",
        "remove-node",
        "volume",
        "price",
        "spot-history",
        "bill",
        "doctor",
        "config",
    ):
        assert f" {name} " in out
    code = "import sys, awsc.cli; print(sorted(m for m in ('ansible_runner', 'boto3', 'botocore') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_shell_completion(fenv):
    program = str(VENV_BIN / "awsc")
    # Typer's own switch: --show-completion takes the shell named, instead of guessing it from
    # the process tree (which has no shell under pytest-xdist).
    shown = dict(fenv, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    script = subprocess.run([program, "--show-completion", "bash"], env=shown, capture_output=True, text=True)
    assert "_awsc_completion" in script.stdout, (script.returncode, script.stderr)
    env = dict(fenv, _AWSC_COMPLETE="complete_bash", COMP_WORDS="awsc volume ", COMP_CWORD="2")
    words = subprocess.run([program], env=env, capture_output=True, text=True).stdout.split()
    assert words == ["create", "ls", "rm"]


def test_config_init_writes_a_sample_that_resolves(fenv):
    out = ok(fenv, "config", "init").stdout
    path = Path(fenv["XDG_CONFIG_HOME"]) / "awsc" / "config.toml"
    assert str(path) in out and path.exists()
    assert "[templates.small]" in path.read_text() and path.read_text().startswith("#")
    assert "exists already" in refused(fenv, "config", "init")

    spot = valid(json.loads(ok(fenv, "config", "show", "spot", "--json").stdout), schemas.CONFIG)
    assert spot["chain"] == ["small", "compute", "spot"]
    assert spot["settings"]["workers"] == 4  # from compute
    assert spot["settings"]["worker_instance_type"] == "c5.xlarge"
    assert spot["settings"]["spot_max_price"] == "0.10"
    assert spot["settings"]["volume_size"] == 10  # from small
    assert spot["settings"]["subnet_id"] == ""  # the playbooks' default
    text = ok(fenv, "config", "show").stdout  # [defaults] template = "small"
    assert "# template small" in text and 'worker_instance_type = "t3.micro"' in text


@pytest.mark.parametrize(
    ("toml", "args", "message"),
    [
        ("", ["config", "show", "nope"], "Unknown template 'nope' (known: none yet"),
        ("[templates.a]\nworkers = 1\n", ["config", "show", "b"], "Unknown template 'b' (known: a)."),
        ('[templates.a]\nextends = "b"\n[templates.b]\nextends = "a"\n', ["config", "show", "a"], "in a loop"),
        ('[templates.a]\nextends = "zz"\n', ["config", "show", "a"], "Template 'a' extends unknown template 'zz'"),
        ("[templates.a]\nworkres = 1\n", ["config", "show", "a"], "unknown setting 'workres'"),
        ('[templates.a]\nworkers = "two"\n', ["config", "show", "a"], "workers = 'two' has the wrong type"),
        ("[templates.a\n", ["config", "show", "a"], "is not valid TOML"),
        ('[templates.a]\nscheduler = "pbs"\n', ["config", "show", "a"], "scheduler 'pbs' is not one of slurm, sge"),
        ("", ["up", "x", "-t", "nope", "--dry-run"], "Unknown template 'nope'"),
    ],
)
def test_bad_config_is_one_line(fenv, toml, args, message):
    path = Path(fenv["XDG_CONFIG_HOME"]) / "awsc" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(toml)
    assert message in refused(fenv, *args)


# ---- prices --------------------------------------------------------------------------------------


def test_the_estimate_says_what_a_forgotten_cluster_costs_and_what_the_free_tier_pays(fenv, ec2):
    # 3 × t3.micro, 3 public IPv4, 40 GiB: $0.0506/hour, for the guard's 60 idle minutes at most.
    out = ok(fenv, "up", "lost", "--dry-run").stdout
    assert "Forgotten: at most $0.05 after its last job or login (the guard ends it after 60 idle minutes)." in out
    # The emulator has no Free Tier API (tests/test_units.py has its recorded answers): one line, and on.
    assert "  Free tier: not known, the Free Tier API did not answer (HTTP 500); AWS bills as estimated.\n" in out
    from awsc import billing

    assert billing.eligible(ec2, ["t3.micro", "t3.large", "t3.micro"]) == {"t3.micro": True, "t3.large": False}
    out = ok(fenv, "up", "lost", "--dry-run", "--idle-shutdown", "0").stdout
    assert "Forgotten: it bills until `awsc down lost` (idle_shutdown is 0: no idle shutdown)." in out
    assert 'Invalid ttl "8h": pass the hours the cluster may run' in refused(fenv, "up", "lost", "--ttl", "8h")


def test_the_estimate_of_an_elastic_cluster_is_a_range(fenv):
    # The master alone ($0.0104 + $0.005 IPv4 + 20 GiB), up to 3 elastic t3.micro workers with their
    # IPv4 and 10 GiB roots; the guard's budget counts the top of the range.
    out = ok(fenv, "up", "burst", "--dry-run", "-n", "0", "--max-workers", "3").stdout
    low, high = 0.0104 + 0.005 + 20 * 0.08 / 730, 4 * (0.0104 + 0.005) + 50 * 0.08 / 730
    line = f"Elastic: Slurm starts up to 3 more worker(s) for waiting jobs and ends them when idle: from ${low:.4f} to"
    assert f"{line} ${high:.4f}/hour." in " ".join(out.split())
    shown = json.loads(ok(fenv, "up", "burst", "--dry-run", "--json", "-n", "0", "--max-workers", "3").stdout)
    estimate = valid(shown["estimate"], schemas.ESTIMATE)
    assert estimate["elastic_workers"] == 3
    assert (estimate["per_hour"], estimate["most_per_hour"]) == (
        pytest.approx(low, abs=1e-6),
        pytest.approx(high, abs=1e-6),
    )


def cost_explorer_answers(emulator, *results: dict) -> None:
    """Queue get_cost_and_usage answers in the emulator (moto's API: each new query takes the next)."""
    request = urllib.request.Request(
        f"{emulator.endpoint}/moto-api/static/ce/cost-and-usage-results",
        data=json.dumps({"results": list(results)}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def cost_groups(start: str, end: str, **usd: str) -> dict:
    """A get_cost_and_usage answer grouped by the awsc:cluster tag; key "" is the untagged costs."""
    groups = [
        {"Keys": [f"awsc:cluster${k}"], "Metrics": {"UnblendedCost": {"Amount": v, "Unit": "USD"}}}
        for k, v in usd.items()
    ]
    return {
        "ResultsByTime": [
            {"TimePeriod": {"Start": start, "End": end}, "Total": {}, "Groups": groups, "Estimated": False}
        ]
    }


def test_bill_splits_the_months_cost_by_cluster_from_cost_explorer(emulator, fenv):
    cost_explorer_answers(
        emulator, cost_groups("2026-11-01", "2026-12-01", gamma="1.25", sigma="0.5", **{"": "10.004"})
    )
    bill = valid(json.loads(ok(fenv, "bill", "--month", "2026-11", "--json").stdout), schemas.BILL)
    assert bill["bill"] == {
        "start": "2026-11-01",
        "end": "2026-12-01",
        "total_usd": 11.75,
        "awsc_usd": 1.75,
        "clusters": {"gamma": 1.25, "sigma": 0.5},
        "untagged_usd": 10.0,
        "estimated": False,
    }
    # The emulator has no Free Tier API: one line says so.
    assert bill["free_tier"]["error"] == "HTTP 500"
    text = ok(fenv, "bill", "--month", "2026-11").stdout
    assert "Cost from 2026-11-01 to 2026-12-01 (Cost Explorer): $11.75 for the account" in text
    assert "  awsc clusters: $1.75\n" in text and "    gamma" in text
    assert "Free tier: not known, the Free Tier API did not answer (HTTP 500)." in text
    # Before the tag is activated for billing, every cost is untagged: awsc says how.
    cost_explorer_answers(emulator, cost_groups("2026-10-01", "2026-11-01", **{"": "3.00"}))
    text = " ".join(ok(fenv, "bill", "--month", "2026-10").stdout.split())
    assert "$3.00 for the account No cost carries the awsc:cluster tag." in text
    assert "activate the tag in the Billing console (Cost allocation tags, awsc:cluster, Activate)" in text
    assert "pass a month as YYYY-MM" in refused(fenv, "bill", "--month", "11/2026")
    assert "has not begun" in refused(fenv, "bill", "--month", "2999-01")


def test_spot_estimate_from_the_emulators_spot_history(fenv):
    out = json.loads(ok(fenv, "up", "spotty", "--spot-max-price", "0.05", "--dry-run", "--json").stdout)
    est = valid(out["estimate"], schemas.ESTIMATE)
    workers = next(line for line in est["lines"] if line["what"].startswith("workers"))
    assert workers["unit"] == pytest.approx(0.00001)  # the emulator's spot price
    assert "spot, current price" in workers["note"]
    history = valid(json.loads(ok(fenv, "spot-history", "c5.large", "--json").stdout), schemas.SPOT_HISTORY)
    assert {row["zone"] for row in history} >= {"us-east-1a", "us-east-1b"}


class RecordedPricing:
    """The Pricing API's GetProducts as recorded in tests/data (the emulator has no Pricing API)."""

    def __init__(self):
        self.page = json.loads((DATA / "pricing_get_products.json").read_text())
        self.calls = []

    def get_paginator(self, operation):
        assert operation == "get_products"
        return self

    def paginate(self, **kwargs):
        self.calls.append(kwargs)
        return [self.page]


def test_price_refresh_writes_the_cache_the_commands_then_use(fenv):
    with only_environment(fenv):
        path, found = pricing.refresh(
            types=["m7i.large"], regions=["us-east-1"], client=(recorded := RecordedPricing())
        )
    assert found == 3 and path == Path(fenv["XDG_CACHE_HOME"]) / "awsc" / "prices.json"
    filters = {f["Field"]: f["Value"] for f in recorded.calls[0]["Filters"]}
    assert filters == {
        "regionCode": "us-east-1",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    shown = valid(json.loads(ok(fenv, "price", "m7i.large", "m5.large", "--json").stdout), schemas.PRICE)
    assert shown["instance_hour"] == {"m7i.large": 0.1008, "m5.large": 0.096}  # m5.large: dedicated line ignored
    assert "Price List API" in shown["source"]


def test_price_refresh_without_the_api_keeps_the_table(fenv):
    line = refused(fenv, "price", "--refresh")
    assert "The AWS Price List API is not reachable" in line and "the shipped table stays" in line
    shown = valid(json.loads(ok(fenv, "price", "--json").stdout), schemas.PRICE)
    assert shown["taken"] == json.loads(pricing.SHIPPED.read_text())["taken"]
    assert shown["instance_hour"]["t3.micro"] == 0.0104


# ---- a cluster's life ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gamma(menv, ec2):
    """Cluster 'gamma': provisioned by `awsc up --provision-only`, 1 master + 2 workers."""
    result = ok(menv, "up", "gamma", "--provision-only", "--yes", "--ssh-cidr", CALLER_CIDR, "-n", "2")
    assert sorted(by_node(ec2, "gamma")) == ["master", "node001", "node002"]
    yield result
    # Gone afterwards even when a test fails (the tests' own down leaves nothing to do here).
    if by_node(ec2, "gamma"):
        ok(menv, "down", "gamma", "--yes", "--delete-volume")


def test_up_prints_the_estimate_then_provisions(gamma, menv):
    out = gamma.stdout
    assert (
        out.index("Estimated cost in us-east-1") < out.index("Total: $0.0506/hour") < out.index("Cluster gamma is up")
    )
    assert "» Provision the cluster's AWS resources" in gamma.stderr
    assert "+ Launch the master" in gamma.stderr
    runs = list((Path(menv["XDG_STATE_HOME"]) / "awsc" / "gamma" / "runs").glob("*-provision/artifacts/*/stdout"))
    assert runs and "PLAY RECAP" in runs[0].read_text()
    command = json.loads(runs[0].parent.joinpath("command").read_text())
    assert command["env"]["AWS_SECRET_ACCESS_KEY"] == "********"
    assert command["env"]["AWSC_CLUSTER"] == "gamma"


def test_ls_and_status(gamma, menv):
    clusters = valid(json.loads(ok(menv, "ls", "--json").stdout), schemas.LS)
    row = next(c for c in clusters if c["name"] == "gamma")
    assert row["state"] == "running" and row["nodes"] == 3 and row["workers"] == 2
    assert row["master_instance_type"] == "t3.micro" and row["worker_instance_types"] == ["t3.micro"]
    # 3 × t3.micro, 3 public IPv4, 3 root volumes of 10 GiB + /data 10 GiB.
    assert row["cost_per_hour"] == pytest.approx(3 * 0.0104 + 3 * 0.005 + 40 * 0.08 / 730, abs=1e-6)
    assert 0 <= row["age_seconds"] < 3600
    assert "gamma" in ok(menv, "ls").stdout

    status = valid(json.loads(ok(menv, "status", "gamma", "--json").stdout), schemas.STATUS)
    assert [n["node"] for n in status["nodes"]] == ["master", "node001", "node002"]
    assert all(n["public_ip"] and n["private_ip"] and n["user"] == "admin" for n in status["nodes"])
    assert status["scheduler"]["reachable"] is False
    assert "Connection refused" in status["scheduler"]["error"]
    text = ok(menv, "status", "gamma").stdout
    assert "Scheduler: unreachable" in text and "node002" in text


def test_ssh_put_get_use_the_clusters_key_and_user(gamma, menv, ec2):
    # Public addresses, as on AWS: safe here, since ssh and scp are the fake ones (AWSC_SSH).
    menv = dict(menv, AWSC_CONNECT="")
    nodes = by_node(ec2, "gamma")
    key = str(Path(menv["XDG_CONFIG_HOME"]) / "awsc" / "keys" / "gamma.pem")
    master = f"admin@{nodes['master']['PublicIpAddress']}"
    line = ok(menv, "ssh", "gamma", "--print").stdout.split()
    assert line[-1] == master and key in line
    line = ok(menv, "ssh", "gamma", "node002", "--print", "--", "sinfo", "-N").stdout.split()
    assert line[-4:] == [f"admin@{nodes['node002']['PublicIpAddress']}", "--", "sinfo", "-N"]
    line = ok(menv, "put", "gamma", "a.txt", "b.txt", "/data/in", "--print").stdout.split()
    assert line[-3:] == ["a.txt", "b.txt", f"{master}:/data/in"] and "-r" in line
    line = ok(menv, "get", "gamma", "/data/out", "here", "--node", "node001", "--print").stdout.split()
    assert line[-2:] == [f"admin@{nodes['node001']['PublicIpAddress']}:/data/out", "here"]
    # Really running ssh: the fake one fails as an unreachable host does, and awsc passes its code on.
    assert awsc(menv, "ssh", "gamma", "--", "hostname").exit_code == 255
    assert "Cluster gamma has no node 'node009'" in refused(menv, "ssh", "gamma", "node009")


def test_the_launch_settings_live_on_the_cluster(menv, ec2):
    up = ("up", "sigma", "--provision-only", "--yes", "--ssh-cidr", CALLER_CIDR, "-n", "1")
    ok(menv, *up, "--scheduler", "sge", "--spot-max-price", "0.05")
    master = tags(by_node(ec2, "sigma")["master"])
    assert (master["awsc:scheduler"], master["awsc:spot-max-price"], master["awsc:root-volume-size"]) == (
        "sge",
        "0.05",
        "10",
    )
    # This machine's settings file is lost (as on another machine): the cluster's tags still tell.
    saved = Path(menv["XDG_STATE_HOME"]) / "awsc" / "sigma" / "settings.json"
    saved.unlink()
    ssh_log = Path(menv["AWSC_SSH"]).parent / "ssh.log"
    ssh_log.unlink(missing_ok=True)
    ok(menv, "status", "sigma")
    assert "qhost; echo; qstat -f -u '*'" in ssh_log.read_text() and "sinfo" not in ssh_log.read_text()
    assert "with scheduler sge (asked: slurm)" in refused(menv, *up, "--scheduler", "slurm")
    ok(menv, "add-node", "sigma", "--provision-only", "--yes")
    resumed = json.loads(saved.read_text())
    assert (resumed["scheduler"], resumed["spot_max_price"], resumed["workers"]) == ("sge", "0.05", 2)
    ok(menv, *up)  # no --scheduler: the cluster's own
    assert json.loads(saved.read_text())["scheduler"] == "sge"
    ok(menv, "down", "sigma", "--yes", "--delete-volume")


def test_stop_and_start_warn_that_volumes_bill(gamma, menv, ec2):
    out = ok(menv, "stop", "gamma").stdout
    assert "Its volumes still bill (4 EBS volume(s), 40 GiB: $3.20/month)" in " ".join(out.split())
    assert {i["State"]["Name"] for i in by_node(ec2, "gamma").values()} == {"stopped"}
    row = next(c for c in json.loads(ok(menv, "ls", "--json").stdout) if c["name"] == "gamma")
    assert row["state"] == "stopped" and row["cost_per_hour"] == pytest.approx(40 * 0.08 / 730, abs=1e-6)
    assert "is stopped" in refused(menv, "ssh", "gamma")
    out = ok(menv, "start", "gamma").stdout
    assert "Cluster gamma is running" in out
    assert {i["State"]["Name"] for i in by_node(ec2, "gamma").values()} == {"running"}


def test_add_node_and_remove_node(gamma, menv, ec2):
    out = ok(menv, "add-node", "gamma", "--provision-only").stdout
    assert "Adding 1 × t3.micro to gamma: $0.0104/hour more" in out
    assert sorted(by_node(ec2, "gamma")) == ["master", "node001", "node002", "node003"]
    # `up` with the template's 2 workers would now remove one: refused unless -n says so.
    line = refused(menv, "up", "gamma", "--provision-only", "--yes", "--ssh-cidr", CALLER_CIDR)
    assert "Cluster gamma has 3 workers, the template 2: pass -n 3" in line
    assert "has no worker 'node007'" in refused(menv, "remove-node", "gamma", "node007")
    assert "has no worker 'master'" in refused(menv, "remove-node", "gamma", "master")
    # A worker in the middle: terminated on its own, its number stays free. (The highest-numbered one
    # goes by provisioning with one worker fewer, the path add-node takes the other way.)
    ok(menv, "remove-node", "gamma", "node002", "--provision-only")
    assert sorted(by_node(ec2, "gamma")) == ["master", "node001", "node003"]
    # The security group still lets only the caller in: the settings were carried over.
    group = ec2.describe_security_groups(GroupNames=["awsc-gamma"])["SecurityGroups"][0]
    assert {r["CidrIp"] for p in group["IpPermissions"] for r in p.get("IpRanges", [])} == {CALLER_CIDR}


def test_up_of_an_existing_cluster_with_other_settings_is_refused(gamma, menv, ec2):
    before = sorted(tagged_resources(ec2, "gamma"))
    line = refused(menv, "up", "gamma", "--master-type", "t3.small", "--yes", "--provision-only")
    assert "Cluster gamma exists in us-east-1 with master_instance_type t3.micro (asked: t3.small)" in line
    assert sorted(tagged_resources(ec2, "gamma")) == before


def test_a_cluster_its_guard_ended_is_listed_and_comes_back_with_its_volume(gamma, menv, ec2):
    # What the guard's poweroff becomes on EC2 (shutdown behaviour terminate): every instance gone,
    # the security group, key pair and /data volume left.
    [data] = ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["gamma-data"]}])["Volumes"]
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in by_node(ec2, "gamma").values()])
    row = next(c for c in valid(json.loads(ok(menv, "ls", "--json").stdout), schemas.LS) if c["name"] == "gamma")
    assert (row["state"], row["nodes"], row["running"]) == ("ended", 0, 0)
    assert row["cost_per_hour"] == pytest.approx(10 * 0.08 / 730, abs=1e-6)  # the kept volume
    hint = "`awsc up gamma` brings it back with its /data volume, `awsc down gamma` removes what is left."
    assert hint in " ".join(ok(menv, "ls").stdout.split())
    ok(menv, "up", "gamma", "--provision-only", "--yes", "--ssh-cidr", CALLER_CIDR, "-n", "2")
    nodes = by_node(ec2, "gamma")
    [again] = ec2.describe_volumes(VolumeIds=[data["VolumeId"]])["Volumes"]
    assert [a["InstanceId"] for a in again["Attachments"]] == [nodes["master"]["InstanceId"]]


def test_down_keeps_the_volume_then_deletes_it(gamma, menv, ec2):
    # Run last in this module (pytest keeps file order): takes gamma away.
    assert "Not terminated" in refused(menv, "down", "gamma")  # no --yes, no answer
    volume = tags(ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["gamma-data"]}])["Volumes"][0])
    assert volume["awsc:role"] == "data"
    left = valid(json.loads(ok(menv, "down", "gamma", "--yes", "--json").stdout), schemas.DOWN)
    assert [(x["type"], x["size_gib"], x["per_month"]) for x in left["leftovers"]] == [("volume", 10, 0.8)]
    assert left["per_month"] == 0.8
    assert by_node(ec2, "gamma") == {}
    # `up` again would adopt the kept volume: the estimate counts only the root volumes.
    again = awsc(menv, "up", "gamma", "--dry-run", "--json")
    assert again.exit_code == 0 and f"Reusing the /data volume {left['leftovers'][0]['id']} (10 GiB)" in again.stderr
    assert json.loads(again.stdout)["estimate"]["storage_gib"] == 30
    out = ok(menv, "down", "gamma", "--yes", "--delete-volume").stdout
    assert "Cluster gamma is gone: nothing is left that bills." in out
    assert tagged_resources(ec2, "gamma") == []
    assert "No cluster 'gamma' in us-east-1" in refused(menv, "down", "gamma", "--yes")


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["up", "Bad_Name"],
        ["down", "Bad_Name", "--yes"],
        ["status", "Bad_Name"],
        ["ssh", "Bad_Name"],
        ["stop", "Bad_Name"],
        ["start", "Bad_Name"],
        ["add-node", "Bad_Name"],
        ["remove-node", "Bad_Name", "node001"],
        ["up", "x" * 33],
    ],
)
def test_bad_cluster_name(fenv, args):
    assert "Invalid cluster name" in refused(fenv, *args)


@pytest.mark.parametrize(
    "args",
    [
        ["down", "ghost", "--yes"],
        ["status", "ghost"],
        ["ssh", "ghost"],
        ["put", "ghost", "a", "b"],
        ["get", "ghost", "/a"],
        ["stop", "ghost"],
        ["start", "ghost"],
        ["add-node", "ghost"],
        ["remove-node", "ghost", "node001"],
    ],
)
def test_a_cluster_that_does_not_exist(fenv, ec2, args):
    assert "No cluster 'ghost' in us-east-1" in refused(fenv, *args)
    assert tagged_resources(ec2, "ghost") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worker-type", "t3.bogus"], "Instance type 't3.bogus' does not exist in us-east-1"),
        (["--scheduler", "pbs"], "Unknown scheduler 'pbs'"),
        (["--volume-size", "5", "--volume-id", "vol-1"], "Pass --volume-size (a new volume) or --volume-id"),
    ],
)
def test_bad_up_options_create_nothing(fenv, ec2, args, message):
    assert message in refused(fenv, "up", "badopts", "--yes", *args)
    assert tagged_resources(ec2, "badopts") == []


@pytest.mark.parametrize("args", [["up", "nocreds", "--yes"], ["ls"], ["down", "nocreds", "--yes"], ["status", "x"]])
def test_missing_credentials(emulator, tmp_path, ec2, args):
    env = cli_env(tmp_path / "home", emulator.endpoint)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    assert "No AWS credentials: set AWS_PROFILE" in refused(env, *args)
    assert tagged_resources(ec2, "nocreds") == []


def test_confirmation_above_the_threshold_is_refused_without_an_answer(fenv, ec2):
    path = Path(fenv["XDG_CONFIG_HOME"]) / "awsc" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[defaults]\nconfirm_above = 0.01\n")
    for answer in (None, "n\n"):
        result = awsc(fenv, "up", "pricey", "--ssh-cidr", CALLER_CIDR, input=answer)
        assert result.exit_code == 1
        assert "Total: $0.0506/hour" in result.stdout  # the estimate came first
        assert "Not launched: above confirm_above = $0.01/hour; nothing was created" in result.stderr
    assert tagged_resources(ec2, "pricey") == []


def test_a_failed_run_names_the_task_the_log_and_the_way_out(fenv, ec2):
    result = awsc(
        fenv, "up", "failing", "--yes", "--provision-only", "--ssh-cidr", CALLER_CIDR, "--ami", "ami-0000000000000dead"
    )
    assert result.exit_code == 1
    err = result.stderr
    assert "✗ playbooks/provision.yml failed at task “Fail when the AMI does not exist” on localhost:" in err
    assert "AMI 'ami-0000000000000dead' does not exist in us-east-1" in err
    log = Path(err.split("Log: ")[1].split()[0])
    assert log.is_file() and log.is_relative_to(Path(fenv["XDG_STATE_HOME"]) / "awsc" / "failing" / "runs")
    assert "`awsc up failing` again resumes; `awsc down failing` removes what was created." in err
    assert tagged_resources(ec2, "failing") == []


def test_verbose_shows_ansibles_own_output(fenv, ec2):
    result = awsc(fenv, "up", "loud", "-v", "--yes", "--provision-only", "--ssh-cidr", CALLER_CIDR, "--ami", "ami-0bad")
    assert result.exit_code == 1
    assert "TASK [Fail when the AMI does not exist]" in result.stderr and "PLAY RECAP" in result.stderr
    assert "✗ playbooks/provision.yml failed at task “Fail when the AMI does not exist”" in result.stderr
    assert tagged_resources(ec2, "loud") == []


def test_the_region_comes_from_the_option_the_config_or_the_environment(fenv):
    assert json.loads(ok(fenv, "price", "--json").stdout)["region"] == "us-east-1"  # AWS_REGION
    assert json.loads(ok(dict(fenv, AWS_REGION="eu-central-1"), "price", "--json").stdout)["region"] == "eu-central-1"
    path = Path(fenv["XDG_CONFIG_HOME"]) / "awsc" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('[defaults]\nregion = "eu-west-1"\n')
    shown = json.loads(ok(fenv, "price", "t3.micro", "--json").stdout)
    assert (shown["region"], shown["instance_hour"]) == ("eu-west-1", {"t3.micro": 0.0114})
    assert json.loads(ok(fenv, "price", "-r", "us-west-2", "--json").stdout)["region"] == "us-west-2"
    est = json.loads(ok(fenv, "up", "far", "--dry-run", "--json").stdout)["estimate"]
    assert est["region"] == "eu-west-1" and est["per_hour"] == pytest.approx(
        3 * 0.0114 + 3 * 0.005 + 40 * 0.088 / 730, abs=1e-6
    )
    # ls looks in the config's region (which has no cluster: the text names the region).
    assert valid(json.loads(ok(fenv, "ls", "--json").stdout), schemas.LS) == []
    assert ok(fenv, "ls").stdout.strip() == "No clusters in eu-west-1."


# ---- volumes, doctor -----------------------------------------------------------------------------


def test_volume_create_ls_rm(fenv, ec2):
    out = ok(fenv, "volume", "create", "results", "--size", "5", "--zone", "us-east-1b").stdout
    assert "A 5 GiB gp3 volume costs $0.40/month" in out
    rows = valid(json.loads(ok(fenv, "volume", "ls", "--json").stdout), schemas.VOLUMES)
    row = next(r for r in rows if r["name"] == "results")
    assert (row["size_gib"], row["zone"], row["state"], row["per_month"]) == (5, "us-east-1b", "available", 0.4)
    assert row["id"] in out
    assert "Not deleted" in refused(fenv, "volume", "rm", row["id"])
    ok(fenv, "volume", "rm", row["id"], "--yes")
    assert ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [row["id"]]}])["Volumes"] == []
    assert "No awsc volume vol-0000" in refused(fenv, "volume", "rm", "vol-0000", "--yes")


def test_doctor(fenv, emulator, tmp_path):
    out = ok(fenv, "doctor").stdout
    assert "ok   credentials: account 123456789012" in out
    assert "ok   AMI: ami-0d12bbbbbbbbbbbb2 (debian-12-amd64-" in out
    # moto has no EC2 quotas in Service Quotas: doctor says it could not read it (the quota
    # compare itself is the next test).
    assert "ok   instance quota: 6 vCPUs needed; the quota could not be read" in out
    key = Path(fenv["XDG_CONFIG_HOME"]) / "awsc" / "keys" / "old.pem"
    key.parent.mkdir(parents=True)
    key.write_text("x")
    key.chmod(0o644)
    result = awsc(fenv, "doctor")
    assert result.exit_code == 1 and f"fix: chmod 600 {key}" in result.stdout
    key.chmod(stat.S_IRUSR | stat.S_IWUSR)
    (key.parent.parent / "config.toml").write_text('[templates.old]\nami = "ami-0000000000000dead"\n')
    result = awsc(fenv, "doctor", "-t", "old")
    assert result.exit_code == 1
    assert "FAIL AMI: no AMI ami-0000000000000dead in us-east-1" in result.stdout
    assert "fix: pass an AMI of that region: --ami ami-..." in result.stdout
    env = cli_env(tmp_path / "nocreds", emulator.endpoint)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    result = awsc(env, "doctor")
    assert result.exit_code == 1
    assert "FAIL credentials: No AWS credentials" in result.stdout and "fix: set AWS_PROFILE" in result.stdout


# ---- as a program --------------------------------------------------------------------------------


def test_the_installed_command_refuses_without_an_answer_and_stops_on_ctrl_c(emulator, ec2, tmp_path):
    """`.venv/bin/awsc` as a user runs it: no stdin is a no; Ctrl-C stops the playbook and says so."""
    env = cli_env(tmp_path / "home", emulator.endpoint)
    program = str(VENV_BIN / "awsc")
    (Path(env["XDG_CONFIG_HOME"]) / "awsc").mkdir(parents=True)
    (Path(env["XDG_CONFIG_HOME"]) / "awsc" / "config.toml").write_text("[defaults]\nconfirm_above = 0\n")
    refused_run = subprocess.run(
        [program, "up", "delta", "--ssh-cidr", CALLER_CIDR],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused_run.returncode == 1 and "Not launched" in refused_run.stderr
    assert tagged_resources(ec2, "delta") == []

    proc = subprocess.Popen(
        [program, "up", "delta", "--yes", "--provision-only", "--ssh-cidr", CALLER_CIDR],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupt once the master is being launched: the key and the security group exist by then.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        tags(g).get("awsc:cluster") == "delta" for g in ec2.describe_security_groups()["SecurityGroups"]
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Interrupted: playbooks/provision.yml was stopped during “" in err
    assert "These steps had already changed something: Create the keys' folder; Make the cluster's key here" in err
    assert "Resources may exist and bill: `awsc ls` shows them." in err
    assert "`awsc up delta` again resumes; `awsc down delta` removes what was created." in err

    down = subprocess.run(
        [program, "down", "delta", "--yes", "--delete-volume"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert down.returncode == 0, down.stderr
    assert "nothing is left that bills" in down.stdout
    assert tagged_resources(ec2, "delta") == []
    listed = subprocess.run([program, "ls", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert "delta" not in [c["name"] for c in valid(json.loads(listed.stdout), schemas.LS)]
