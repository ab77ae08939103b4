"""Roll-ups keep what an analysis of one version needs (issue #15): on a day that mixed versions,
each version's latency and errors as well as its runs, so the current version's figures are the
same before and after `purge_logs`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from casebank.cases import services as case_services
from reflection.analysis.engine import analyze_case
from reflection.analysis.retention import logs_roll_up_and_purge
from reflection.models import DailyCaseRollup, ExecutionLog
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db

V2_PLAN = [{"agent": "data_analysis", "action": "SQL aggregate by month and region", "timeout_s": 30}]
OLD = timedelta(days=40)


@pytest.fixture
def now():
    return timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)


def _mixed_day(make_case, now):
    """Day -40 ran v1 (slow timeouts) and v2 (quick, a few parse errors); v2 ran yesterday too."""
    case = make_case()
    case = case_services.case_update(case=case, actor="editor", plan=V2_PLAN)
    add_logs(case, count=30, success=False, ms=4_000, now=now, age=OLD, version=1, error_type="TimeoutError",
             error_message="timed out after 30 s")
    add_logs(case, count=10, success=True, ms=1_000, now=now, age=OLD, version=1)
    add_logs(case, count=18, success=True, ms=200, now=now, age=OLD, version=2)
    add_logs(case, count=2, success=False, ms=300, now=now, age=OLD, version=2, error_type="ParseError",
             error_message="bad row 17")
    add_logs(case, count=20, success=True, ms=250, now=now, age=timedelta(days=1), version=2)
    return case


def _headline(analysis):
    return {key: analysis[key] for key in ("case_version", "total_executions", "successes", "success_rate",
                                           "weighted_success_rate", "common_errors", "versions")} | {
        "mean": analysis["latency_ms"]["mean"]}


def test_the_current_versions_figures_survive_retention_on_a_mixed_day(make_case, now):
    case = _mixed_day(make_case, now)
    before = analyze_case(case_id=case.pk, window_days=60, now=now)

    logs_roll_up_and_purge(now=now)

    assert not ExecutionLog.objects.filter(case_id=case.pk, created_at__lt=now - timedelta(days=30)).exists()
    after = analyze_case(case_id=case.pk, window_days=60, now=now)
    assert _headline(after) == _headline(before)
    assert (after["total_executions"], after["successes"]) == (40, 38)
    assert [e["error_type"] for e in after["common_errors"]] == ["ParseError"]
    assert after["latency_ms"]["mean"] == round((18 * 200 + 2 * 300 + 20 * 250) / 40, 1)
    assert after["versions"] == [
        {"version": 2, "runs": 40, "successes": 38, "success_rate": 0.95, "current": True},
        {"version": 1, "runs": 40, "successes": 10, "success_rate": 0.25, "current": False},
    ]


def test_a_mixed_day_keeps_each_versions_detail_and_a_single_version_day_only_counts(make_case, now):
    case = _mixed_day(make_case, now)
    add_logs(case, count=5, success=True, ms=100, now=now, age=timedelta(days=41), version=2)

    logs_roll_up_and_purge(now=now)

    mixed = DailyCaseRollup.objects.get(case=case, day=(now - OLD).date())
    assert set(mixed.versions) == {"1", "2"}
    assert mixed.versions["2"]["runs"] == 20 and mixed.versions["2"]["latency_sum_ms"] == 18 * 200 + 2 * 300
    assert list(mixed.versions["2"]["errors"]) == ["ParseError"]
    assert list(mixed.versions["1"]["errors"]) == ["TimeoutError"]
    single = DailyCaseRollup.objects.get(case=case, day=(now - timedelta(days=41)).date())
    assert single.versions == {"2": {"runs": 5, "successes": 5}}  # the day's own figures are v2's


def test_a_day_that_becomes_mixed_later_splits_the_version_it_had(make_case, now):
    case = make_case()
    case = case_services.case_update(case=case, actor="editor", plan=V2_PLAN)
    add_logs(case, count=4, success=False, ms=5_000, now=now, age=OLD, version=1, error_type="TimeoutError")
    logs_roll_up_and_purge(now=now)
    # A back-dated v2 run of that day arrives after the day was rolled up.
    add_logs(case, count=1, success=True, ms=100, now=now, age=OLD, version=2)
    logs_roll_up_and_purge(now=now)

    rollup = DailyCaseRollup.objects.get(case=case, day=(now - OLD).date())
    assert rollup.versions["1"]["latency_sum_ms"] == 20_000 and list(rollup.versions["1"]["errors"]) == ["TimeoutError"]
    assert rollup.versions["2"]["latency_sum_ms"] == 100 and rollup.versions["2"]["errors"] == {}
    analysis = analyze_case(case_id=case.pk, window_days=60, now=now)
    assert (analysis["total_executions"], analysis["common_errors"], analysis["latency_ms"]["mean"]) == (1, [], 100.0)


def test_a_mixed_day_rolled_up_before_the_split_counts_runs_but_not_latency_or_errors(make_case, now):
    case = make_case()
    case = case_services.case_update(case=case, actor="editor", plan=V2_PLAN)
    DailyCaseRollup.objects.create(
        case=case, day=(now - OLD).date(), runs=10, successes=6, latency_sum_ms=10_000.0, latency_sq_sum_ms=0.0,
        latency_histogram={}, errors={"TimeoutError": {"count": 4, "example": "", "templates": {"t": 4}}},
        versions={"1": {"runs": 4, "successes": 0}, "2": {"runs": 6, "successes": 6}},
    )
    add_logs(case, count=4, success=True, ms=300, now=now, age=timedelta(days=1), version=2)

    analysis = analyze_case(case_id=case.pk, window_days=60, now=now)

    assert (analysis["total_executions"], analysis["successes"]) == (10, 10)
    # The day's latency and errors cannot be told apart by version: only the raw runs' are known.
    assert analysis["latency_ms"]["mean"] == 300.0 and analysis["common_errors"] == []
