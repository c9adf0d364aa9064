"""Unit tests: pricing, the runner's event reading, ssh arguments, doctor's quota compare, the
package's dependencies and layout. No emulator, no containers, nothing on the network."""

import json
from pathlib import Path

import pytest
from awsc import pricing, schemas
from awsc.config import Config
from conftest import DATA, REPO, valid


def test_the_local_cloud_comes_with_a_plain_install():
    # `pip install awsc` without extras has the emulator `awsc local start` runs.
    from importlib.metadata import requires

    plain = [r for r in requires("awsc") if "extra ==" not in r]
    assert any(r.startswith("moto[server]") for r in plain), plain


def settings(**changes):
    base = {
        "region": "us-east-1",
        "workers": 2,
        "master_instance_type": "t3.micro",
        "worker_instance_type": "t3.micro",
        "spot_max_price": "",
        "root_volume_size": 10,
        "volume_size": 10,
        "volume_id": "",
    }
    return base | changes


def test_on_demand_estimate_adds_instances_addresses_and_volumes():
    table = json.loads(pricing.SHIPPED.read_text())
    est = pricing.estimate(settings(master_instance_type="t3.small", workers=3), table)
    storage = (4 * 10 + 10) * 0.08  # 4 root volumes + /data, gp3 per GiB-month
    assert est.storage_gib == 50 and est.storage_month == pytest.approx(storage)
    assert est.per_hour == pytest.approx(0.0208 + 3 * 0.0104 + 4 * 0.005 + storage / 730)
    assert est.per_month == pytest.approx(est.per_hour * 730)
    assert est.complete and est.spot_max_hour is None
    # The README's figure for the default cluster: about $0.05/hour.
    assert pricing.estimate(settings(), table).per_hour == pytest.approx(0.0506, abs=5e-5)
    # A reused volume is not counted again; an unknown type is said to be unknown.
    assert pricing.estimate(settings(volume_id="vol-1"), table).storage_gib == 30
    assert pricing.estimate(settings(worker_instance_type="z9.huge"), table).unknown == ["z9.huge"]
    valid(est.as_dict(), schemas.ESTIMATE)


def test_spot_estimate_uses_the_current_price_capped_by_the_max():
    table = json.loads(pricing.SHIPPED.read_text())
    base = 0.0104 + 3 * 0.005 + 40 * 0.08 / 730
    at_current = pricing.estimate(settings(spot_max_price="0.05"), table, spot_price=0.0031)
    assert at_current.per_hour == pytest.approx(base + 2 * 0.0031)
    assert at_current.spot_max_hour == pytest.approx(2 * 0.05)
    capped = pricing.estimate(settings(spot_max_price="0.002"), table, spot_price=0.0031)
    assert capped.per_hour == pytest.approx(base + 2 * 0.002)
    unknown = pricing.estimate(settings(spot_max_price="0.05"), table, spot_price=None)
    assert unknown.per_hour == pytest.approx(base + 2 * 0.05)


def test_price_list_parsing_keeps_linux_shared_on_demand_hours():
    page = json.loads((DATA / "pricing_get_products.json").read_text())
    assert pricing.parse_price_list(page["PriceList"]) == {
        "us-east-1": {"t3.micro": 0.0104, "c5.large": 0.085, "m7i.large": 0.1008}
    }


def test_workers_without_a_public_address_are_reached_through_the_master(tmp_path, monkeypatch):
    from awsc import ssh
    from awsc.cloud import Node

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "awsc" / "keys").mkdir(parents=True)
    (tmp_path / "awsc" / "keys" / "c.pem").write_text("key")

    def node(name, role, public):
        return Node(
            node=name,
            role=role,
            instance_id=f"i-{name}",
            instance_type="t3.micro",
            state="running",
            public_ip=public,
            private_ip=f"10.0.0.{len(name)}",
            launched="",
            lifecycle="on-demand",
            user="admin",
            key_name="awsc-c",
            zone="us-east-1a",
            image_id="ami-1",
        )

    members = [node("master", "master", "203.0.113.5"), node("node001", "worker", None)]
    argv = ssh.ssh_command("c", members, members[1], ["true"])
    proxy = next(a for a in argv if a.startswith("ProxyCommand="))
    assert "-W %h:%p admin@203.0.113.5" in proxy and str(tmp_path / "awsc/keys/c.pem") in proxy
    assert argv[-3:] == ["admin@10.0.0.7", "--", "true"]
    # Each hop checks its own host key, strictly, in the cluster's known_hosts.
    known = f"UserKnownHostsFile={tmp_path / 'awsc/keys/c.known_hosts'}"
    assert "HostKeyAlias=awsc-c-master" in proxy and known in proxy and "StrictHostKeyChecking=yes" in proxy
    assert "HostKeyAlias=awsc-c-node001" in argv and known in argv and "StrictHostKeyChecking=yes" in argv
    assert not any("StrictHostKeyChecking=no" in a or "/dev/null" in a for a in argv)
    # `awsc ssh-config`: the same, as an OpenSSH config; the worker jumps through the master.
    block = ssh.config_block("c", members).split("Host ")
    assert block[1].startswith("c-master\n    HostName 203.0.113.5\n") and "ProxyJump" not in block[1]
    assert "    ProxyJump c-master\n" in block[2] and "    HostKeyAlias awsc-c-node001\n" in block[2]


def test_progress_reads_failures_facts_and_changes_from_the_events():
    import io

    from awsc.runner import Progress
    from rich.console import Console

    out = io.StringIO()
    progress = Progress(False, Console(file=out, force_terminal=False))

    def event(kind, task="", **data):
        return {"event": kind, "event_data": {"task": task, "host": "localhost", **data}}

    with progress:
        for e in [
            event("playbook_on_play_start", play="Terminate the cluster"),
            event("playbook_on_task_start", task="Skip me"),
            event("runner_on_skipped", "Skip me"),
            event("runner_on_failed", "Tolerated", ignore_errors=True, res={"msg": "never mind"}),
            event("runner_on_ok", "Delete it", res={"changed": True}),
            event("runner_on_ok", "List", res={"ansible_facts": {"awsc_leftovers": []}}),
            # no_log: the result is censored, changed flag and all; the callback's line still tells.
            dict(event("runner_on_ok", "Launch", res={"censored": "hidden"}), stdout="changed: [localhost]"),
            dict(event("runner_on_ok", "Look", res={"censored": "hidden"}), stdout="ok: [localhost]"),
            event("runner_on_failed", "Break", res={"msg": "boom\n  twice"}),
        ]:
            assert progress(e) is True
    assert [(f.task, f.host, f.message) for f in progress.failures] == [("Break", "localhost", "boom twice")]
    assert progress.facts == {"localhost": {"awsc_leftovers": []}}
    assert progress.changed_tasks == ["Delete it", "Launch"]
    assert out.getvalue() == "» Terminate the cluster\n  + Delete it\n  + Launch\n"


def test_doctor_compares_the_vcpus_needed_with_the_quota(monkeypatch):
    # A stand-in for Service Quotas, which the emulator lacks; EC2's own answers are real moto.
    from awsc import cloud, doctor
    from moto import mock_aws

    class Quotas:
        def __init__(self, value):
            self.value = value

        def get_service_quota(self, ServiceCode, QuotaCode):
            assert (ServiceCode, QuotaCode) == doctor.STANDARD_QUOTA
            return {"Quota": {"Value": self.value}}

    settings = {"region": "us-east-1", "master_instance_type": "t3.micro", "worker_instance_type": "t3.micro"}
    real_client = cloud.client
    with mock_aws():
        for value, fits in ((5, False), (6, True)):
            monkeypatch.setattr(
                cloud,
                "client",
                lambda service, region, v=value: (
                    Quotas(v) if service == "service-quotas" else real_client(service, region)
                ),
            )
            check = doctor._quota(dict(settings, workers=2))
            assert check.ok is fits and check.detail.startswith("6 vCPUs needed"), check


def test_repo_layout_is_where_awsc_looks():
    from awsc import paths

    assert paths.project_dir() == REPO
    assert paths.playbook("launch").is_file() and (REPO / "ansible.cfg").is_file()
    assert Config.load(Path("/nonexistent/config.toml")).resolve()["workers"] == 2


def test_playbook_runs_check_host_keys(monkeypatch):
    # ansible-runner turns host key checking off unless the job's environment says otherwise.
    from awsc.runner import job_environment

    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    assert job_environment("c", "us-east-1")["ANSIBLE_HOST_KEY_CHECKING"] == "True"


def test_python_reads_the_facts_it_shares_with_the_playbooks():
    # One source: playbooks/vars/cluster.yml, read by awsc (not copied into it).
    import yaml
    from awsc import cloud, config

    written = yaml.safe_load((REPO / "playbooks/vars/cluster.yml").read_text())
    assert cloud.alive_states() == written["awsc_alive_states"]
    assert cloud.retry_attempts() == written["awsc_aws_config"]["retries"]["max_attempts"]
    assert config.setting_tags()["awsc:scheduler"] == "scheduler"


def recorded(operation: str, name: str):
    """A Free Tier client that answers `operation` with a recorded response (tests/data/freetier)."""
    from datetime import datetime

    import boto3
    from botocore.stub import Stubber

    response = json.loads((DATA / "freetier" / f"{name}.json").read_text())
    if "accountPlanExpirationDate" in response:
        response["accountPlanExpirationDate"] = datetime.fromisoformat(response["accountPlanExpirationDate"])
    client = boto3.session.Session().client(
        "freetier", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stub = Stubber(client)
    stub.add_response(operation, response)
    stub.activate()
    return client


def recorded_plan(name: str):
    from awsc import billing

    return billing.plan_state(recorded("get_account_plan_state", name))


def test_the_bill_shows_the_free_plan_and_its_ec2_usage():
    from awsc import billing

    plan, error = recorded_plan("free_plan_active")
    usage, error = billing.free_tier_usage(recorded("get_free_tier_usage", "free_tier_usage"))
    assert billing.free_tier_bill_lines(plan, usage, error) == [
        "Free tier: your free plan has $87.50 of credits left until 2027-03-15.",
        "  750 hours of Linux t2.micro or t3.micro instance usage: 212.5 of 750 Hrs",
    ]
    assert billing.free_tier_dict(plan, usage, error)["expires"] == "2027-03-15T00:00:00+00:00"


def test_the_free_plan_says_how_many_hours_its_credits_pay():
    from awsc import billing

    plan, error = recorded_plan("free_plan_active")
    assert error is None
    assert billing.lines(plan, error, 0.0506, ["t3.micro"] * 3, {}) == [
        "  Free tier: your free plan has $87.50 of credits left until 2027-03-15: about 1729 hours of this cluster."
    ]
    plan, error = recorded_plan("free_plan_expired")
    assert billing.lines(plan, error, 0.0506, ["t3.micro"], {}) == [
        "  Free tier: your free plan is expired; its credits do not pay for this cluster."
    ]


def test_the_legacy_offer_is_shared_by_the_clusters_eligible_instances():
    from awsc import billing

    plan, error = recorded_plan("paid_plan")
    said = billing.lines(plan, error, 0.1, ["t3.micro", "t3.large", "t3.large"], {"t3.micro": True, "t3.large": False})
    assert "750 hours a month of free-tier eligible instances in their first 12 months" in said[0]
    assert said[1:] == [
        "  t3.micro: eligible; this cluster's 1 such instance(s) use those hours up in 750 hours.",
        "  t3.large: not eligible, billed as estimated.",
    ]
    three = billing.lines(plan, error, 0.05, ["t3.micro"] * 3, {"t3.micro": True})
    assert three[1].endswith("this cluster's 3 such instance(s) use those hours up in 250 hours.")


def test_a_free_tier_api_that_does_not_answer_is_one_line():
    import boto3
    from awsc import billing
    from botocore.stub import Stubber

    client = boto3.session.Session().client(
        "freetier", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stub = Stubber(client)
    stub.add_client_error("get_account_plan_state", "AccessDeniedException", "not authorized")
    with stub:
        plan, error = billing.plan_state(client)
    assert billing.lines(plan, error, 0.05, ["t3.micro"], {}) == [
        "  Free tier: not known, the Free Tier API did not answer (not allowed: `awsc doctor --policy` has "
        "freetier:GetAccountPlanState); AWS bills as estimated."
    ]
