"""Unit tests of the guard's decisions (roles/guard/files/awsc_guard.py) from recorded squeue,
qstat and who outputs and given times: the idle boundary, postpone, clock skew, spot prices."""

import importlib.util
import sys

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location(
    "awsc_guard", REPO / "collections/ansible_collections/awsc/cluster/roles/guard/files/awsc_guard.py"
)
guard = importlib.util.module_from_spec(spec)
sys.modules["awsc_guard"] = guard  # dataclasses look their module up
spec.loader.exec_module(guard)

LAUNCH = 1_800_000_000.0  # EC2's launch time of the master
MIN = 60
# 1 master + 2 workers, t3.micro on demand ($0.0104/h), plus 3 x 10 GiB root and a 10 GiB volume.
PER_HOUR = 3 * 0.0104 + 40 * 0.08 / 730

SQUEUE_TWO_JOBS = "17\n18\n"
# qstat's own layout (columns cut short here; the guard reads only the lines below the rule).
QSTAT_ONE_JOB = """job-ID  prior   name       user         state submit/start at     queue          slots
-----------------------------------------------------------------------------------------
      1 0.55500 sleep      awsc         r     12/01/2026 10:00:01 all.q@node001  1
"""
QSTAT_NONE = ""
WHO_ONE = "awsc     pts/0        2026-12-01 10:00 (198.51.100.7)\n"


def run_checks(limits, busy_at, start, end, step=MIN, per_hour=PER_HOUR, memory=None):
    """Checks every `step` seconds from start to end; busy_at(t) says whether t is busy. Returns
    the decisions that were not "none", with their times."""
    memory = memory or guard.Memory()
    seen = []
    t = start
    while t <= end:
        decision = guard.decide(limits, per_hour, LAUNCH, t, busy_at(t), memory)
        if decision.action != "none":
            seen.append((t, decision))
            if decision.action == "end":
                break
        t += step
    return seen


def test_recorded_outputs_count_jobs_and_sessions():
    assert guard.jobs_waiting_or_running(squeue=SQUEUE_TWO_JOBS) == 2
    assert guard.jobs_waiting_or_running(squeue="") == 0
    assert guard.jobs_waiting_or_running(qstat=QSTAT_ONE_JOB) == 1
    assert guard.jobs_waiting_or_running(qstat=QSTAT_NONE) == 0
    assert guard.sessions(WHO_ONE) == 1
    assert guard.sessions("") == 0


def test_an_idle_cluster_ends_at_the_idle_boundary_after_two_warnings():
    limits = guard.Limits(idle_minutes=60)
    seen = run_checks(limits, lambda t: False, LAUNCH, LAUNCH + 3 * 3600)
    times = [(t - LAUNCH) / MIN for t, _ in seen]
    assert times == [45, 55, 60]
    assert [d.action for _, d in seen] == ["warn", "warn", "end"]
    assert seen[0][1].message.startswith("awsc: this cluster has been idle: awsc ends it in 15 minutes.")
    assert "sudo awsc-guard postpone 2h" in seen[0][1].message
    assert seen[-1][1].reason == "idle"
    assert seen[-1][1].message == "awsc: this cluster has been idle for 60 minutes: awsc ends it now. /data is kept."


def test_a_job_or_a_login_resets_the_idle_time():
    limits = guard.Limits(idle_minutes=60)
    # A job runs from minute 50 to 70: idle again from 71, so the end is at 131.
    busy = lambda t: 50 * MIN <= t - LAUNCH <= 70 * MIN  # noqa: E731
    seen = run_checks(limits, busy, LAUNCH, LAUNCH + 4 * 3600)
    assert [(t - LAUNCH) / MIN for t, _ in seen] == [45, 116, 126, 131]
    assert guard.decide(limits, PER_HOUR, LAUNCH, LAUNCH, True, guard.Memory()).action == "none"


def test_idle_shutdown_zero_never_ends_an_idle_cluster():
    assert run_checks(guard.Limits(idle_minutes=0), lambda t: False, LAUNCH, LAUNCH + 48 * 3600, step=600) == []


def test_postpone_keeps_an_idle_cluster_within_the_ttl():
    limits = guard.Limits(idle_minutes=60, ttl_hours=3)
    memory = guard.Memory()
    run_checks(limits, lambda t: False, LAUNCH, LAUNCH + 50 * MIN, memory=memory)
    until = guard.postpone(memory, limits, LAUNCH, LAUNCH + 50 * MIN, guard.parse_duration("2h"))
    assert until == LAUNCH + 170 * MIN
    seen = run_checks(limits, lambda t: False, LAUNCH + 51 * MIN, LAUNCH + 6 * 3600, memory=memory)
    assert (seen[-1][0] - LAUNCH) / MIN == 170
    # A postpone past the ttl stops at the ttl, and the ttl still ends the cluster.
    memory = guard.Memory()
    until = guard.postpone(memory, limits, LAUNCH, LAUNCH + 150 * MIN, guard.parse_duration("5h"))
    assert until == LAUNCH + 3 * 3600
    seen = run_checks(limits, lambda t: False, LAUNCH + 151 * MIN, LAUNCH + 6 * 3600, memory=memory)
    assert seen[-1][1].action == "end" and (seen[-1][0] - LAUNCH) / MIN == 180


def test_a_busy_cluster_ends_at_its_ttl_counted_from_ec2s_launch_time():
    limits = guard.Limits(idle_minutes=60, ttl_hours=2, on_limit="stop")
    seen = run_checks(limits, lambda t: True, LAUNCH, LAUNCH + 5 * 3600)
    assert [(t - LAUNCH) / MIN for t, _ in seen] == [105, 115, 120]
    assert seen[-1][1].reason == "ttl"
    assert seen[-1][1].message == (
        "awsc: this cluster has run for its time limit of 2 hours: awsc stops it now. /data is kept."
    )


def test_the_budget_warns_at_80_percent_and_ends_the_cluster_when_reached():
    per_hour = 1.0  # $1/hour: a $2 budget lasts 2 hours
    limits = guard.Limits(idle_minutes=0, budget_usd=2.0)
    seen = run_checks(limits, lambda t: True, LAUNCH, LAUNCH + 5 * 3600, per_hour=per_hour)
    assert [(t - LAUNCH) / MIN for t, _ in seen] == [96, 105, 115, 120]
    assert seen[0][1].message == "awsc: this cluster has used $1.60 of its $2.00 budget."
    assert seen[-1][1].reason == "budget"


def test_spot_workers_count_at_their_maximum_price():
    # What configure writes: on-demand master, spot workers at their max price, an upper bound.
    per_hour = 0.0104 + 2 * 0.05
    assert guard.accrued_usd(per_hour, LAUNCH, LAUNCH + 10 * 3600) == pytest.approx(1.104)


def test_a_clock_behind_ec2s_launch_time_accrues_nothing_and_a_clock_stepped_back_restarts_idle():
    assert guard.accrued_usd(PER_HOUR, LAUNCH, LAUNCH - 300) == 0
    limits = guard.Limits(idle_minutes=60, budget_usd=1.0)
    memory = guard.Memory()
    assert guard.decide(limits, PER_HOUR, LAUNCH, LAUNCH - 300, False, memory).action == "none"
    # The clock steps back after idle began in the "future": idle counts from now, not ends early.
    memory = guard.Memory(idle_since=LAUNCH + 3600)
    assert guard.decide(limits, PER_HOUR, LAUNCH, LAUNCH + 60, False, memory).action == "none"
    assert memory.idle_since == LAUNCH + 60


@pytest.mark.parametrize("text", ["2x", "h", "", "-5"])
def test_a_bad_postpone_duration_is_refused(text):
    with pytest.raises(ValueError, match="is not a duration: give it like 2h"):
        guard.parse_duration(text)


def test_durations():
    assert guard.parse_duration("2h") == 7200
    assert guard.parse_duration("90m") == 5400
    assert guard.parse_duration("1h30m") == 5400
    assert guard.parse_duration("45") == 2700


def test_status_says_the_time_and_money_left():
    limits = guard.Limits(idle_minutes=60, ttl_hours=8, budget_usd=5.0, on_limit="stop")
    memory = guard.Memory()
    run_checks(limits, lambda t: False, LAUNCH, LAUNCH + 20 * MIN, memory=memory)
    lines = guard.status_lines(limits, 1.5, LAUNCH, LAUNCH + 20 * MIN, memory)
    assert lines == [
        "budget: in 3 hours ($0.50 of $5.00 used), then awsc stops the cluster",
        "ttl: in 7 hours 40 minutes (8 hours from the launch), then awsc stops the cluster",
        "idle: in 40 minutes (no job and no login for 20 minutes), then awsc stops the cluster",
    ]
    # Busy, with no time or money limit: nothing is running out.
    busy = guard.Memory()
    assert guard.status_lines(guard.Limits(), 0.1, LAUNCH, LAUNCH + MIN, busy) == [
        "awsc-guard: no limit is running out (the cluster is busy, or none is set)."
    ]
