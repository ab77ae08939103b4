"""A window that starts inside a rolled-up day gives the same totals before and after
`purge_logs` (issue #15: a 33-day window grew from 1551 to 1565 runs after purging)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from reflection.analysis.engine import analyze_case
from reflection.analysis.retention import logs_roll_up_and_purge
from tests.reflection.factories import NOW, add_logs

pytestmark = pytest.mark.django_db


def _history(case) -> None:
    # NOW is 12:00 UTC, so a 33-day window starts at 12:00 on the day 33 days back: 14 runs
    # that morning are before it, 37 that afternoon inside it, 1,514 later days inside it.
    add_logs(case, count=14, success=False, ms=300, age=timedelta(days=33, hours=6), error_type="Timeout",
             error_message="timed out after 30 s")
    add_logs(case, count=37, success=True, ms=200, age=timedelta(days=33) - timedelta(hours=4))
    add_logs(case, count=1_214, success=True, ms=100, age=timedelta(days=20))
    add_logs(case, count=300, success=False, ms=100, age=timedelta(days=2), error_type="KeyError",
             error_message="missing 'x'")


@pytest.mark.parametrize("window_days", [31, 33, 35])
def test_it_counts_the_same_runs_before_and_after_the_purge(make_case, window_days):
    case = make_case()
    _history(case)
    before = analyze_case(case_id=case.pk, window_days=window_days, now=NOW)

    logs_roll_up_and_purge(now=NOW)
    after = analyze_case(case_id=case.pk, window_days=window_days, now=NOW)

    for key in ("total_executions", "successes", "success_rate", "weighted_success_rate"):
        assert after[key] == before[key], key
    assert [(e["error_type"], e["count"]) for e in after["common_errors"]] == [
        (e["error_type"], e["count"]) for e in before["common_errors"]
    ]


def test_it_takes_the_day_the_window_starts_in_whole_past_thirty_days(make_case):
    case = make_case()
    _history(case)
    # The window reaches into a day that is (or will be) a summary: that day counts whole,
    # raw or rolled up, so the figure cannot change when the purge runs.
    assert analyze_case(case_id=case.pk, window_days=33, now=NOW)["total_executions"] == 1_565
    # Within 30 days nothing is ever rolled up: the window is exact to the second.
    assert analyze_case(case_id=case.pk, window_days=30, now=NOW)["total_executions"] == 1_514
