"""Retention rolls old raw logs into daily summaries; analyses see the same totals after."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from reflection.analysis.engine import analyze_case, stats
from reflection.analysis.retention import logs_roll_up_and_purge
from reflection.models import DailyCaseRollup, ExecutionLog
from tests.reflection.factories import NOW, add_logs

pytestmark = pytest.mark.django_db


def _history(case):
    # Ages in whole days from NOW (12:00 UTC) put every log at midday, where a roll-up's day
    # is weighted, so even the weighted rate must come out identical.
    add_logs(case, count=3, success=True, ms=100, age=timedelta(days=40))
    add_logs(case, count=1, success=False, ms=900, age=timedelta(days=40), error_type="Timeout",
             error_message="timed out after 30 s")
    add_logs(case, count=2, success=True, ms=200, age=timedelta(days=35))
    add_logs(case, count=2, success=False, ms=3000, age=timedelta(days=31), error_type="Timeout",
             error_message="timed out after 45 s")
    add_logs(case, count=4, success=True, ms=150, age=timedelta(days=30))  # kept: day not yet past
    add_logs(case, count=1, success=False, ms=150, age=timedelta(days=1), error_type="KeyError",
             error_message="missing 'x'")


def test_it_keeps_the_same_figures_after_rolling_up(make_case):
    case = make_case()
    _history(case)
    before = analyze_case(case_id=case.pk, window_days=60, now=NOW)

    result = logs_roll_up_and_purge(now=NOW)

    assert (result["days"], result["summaries"], result["deleted"]) == (3, 3, 8)
    assert ExecutionLog.objects.filter(case=case).count() == 5
    after = analyze_case(case_id=case.pk, window_days=60, now=NOW)
    for key in ("total_executions", "successes", "success_rate", "weighted_success_rate", "confidence", "slow"):
        assert after[key] == before[key], key
    assert after["latency_ms"]["mean"] == before["latency_ms"]["mean"]
    assert [(e["error_type"], e["count"], e["percentage"], e["templates"]) for e in after["common_errors"]] == [
        (e["error_type"], e["count"], e["percentage"], e["templates"]) for e in before["common_errors"]
    ]
    # Percentiles come from the 10 % histogram once old days are summaries: within one bucket.
    for name in ("p50", "p95", "p99"):
        assert after["latency_ms"][name] == pytest.approx(before["latency_ms"][name], rel=0.1), name


def test_it_summarises_a_day_by_hand(make_case):
    case = make_case()
    _history(case)
    logs_roll_up_and_purge(now=NOW)

    day = DailyCaseRollup.objects.get(case=case, day=date(2026, 5, 6))
    assert (day.runs, day.successes, day.latency_sum_ms, day.latency_sq_sum_ms) == (4, 3, 1200.0, 3 * 100**2 + 900**2)
    assert day.latency_histogram == {str(stats.histogram_bucket(100)): 3, str(stats.histogram_bucket(900)): 1}
    assert day.errors == {"Timeout": {"count": 1, "example": "timed out after 30 s",
                                      "templates": {"timed out after <n> s": 1}}}


def test_it_merges_back_dated_logs_into_an_existing_summary(make_case):
    case = make_case()
    _history(case)
    logs_roll_up_and_purge(now=NOW)
    add_logs(case, count=2, success=False, ms=100, age=timedelta(days=40), error_type="Timeout",
             error_message="timed out after 60 s")

    logs_roll_up_and_purge(now=NOW)

    day = DailyCaseRollup.objects.get(case=case, day=date(2026, 5, 6))
    assert (day.runs, day.successes) == (6, 3)
    assert day.errors["Timeout"]["count"] == 3
    assert analyze_case(case_id=case.pk, window_days=60, now=NOW)["total_executions"] == 15


def test_it_never_keeps_less_than_thirty_days(make_case, settings):
    settings.LOG_RETENTION_DAYS = 5
    case = make_case()
    add_logs(case, count=1, age=timedelta(days=20))
    assert logs_roll_up_and_purge(now=NOW)["deleted"] == 0
    assert ExecutionLog.objects.count() == 1


def _caseless(count: int, *, age: timedelta, success: bool = True, ms: int = 100, error_type: str = "") -> None:
    created = NOW - age
    ExecutionLog.objects.bulk_create(
        ExecutionLog(success=success, execution_time_ms=ms, error_type=error_type, error_message="boom" if error_type else "",
                     created_at=created, ingested_at=created)
        for _ in range(count)
    )


def test_it_summarises_runs_without_a_case_too(make_case):
    case = make_case()
    _history(case)
    _caseless(5, age=timedelta(days=40))
    _caseless(2, age=timedelta(days=40), success=False, ms=700, error_type="Timeout")
    _caseless(3, age=timedelta(days=35))
    before = ExecutionLog.objects.count()

    result = logs_roll_up_and_purge(now=NOW)

    assert (result["days"], result["summaries"], result["deleted"]) == (3, 5, 18)
    rolled = sum(DailyCaseRollup.objects.values_list("runs", flat=True))
    assert rolled + ExecutionLog.objects.count() == before
    day = DailyCaseRollup.objects.get(case__isnull=True, day=date(2026, 5, 6))
    assert (day.runs, day.successes, day.latency_sum_ms) == (7, 5, 5 * 100 + 2 * 700.0)
    assert day.errors == {"Timeout": {"count": 2, "example": "boom", "templates": {"boom": 2}}}

    # Back-dated case-less runs arriving later merge into the same row.
    _caseless(4, age=timedelta(days=40))
    logs_roll_up_and_purge(now=NOW)
    assert DailyCaseRollup.objects.get(case__isnull=True, day=date(2026, 5, 6)).runs == 11
    assert DailyCaseRollup.objects.filter(case__isnull=True).count() == 2
