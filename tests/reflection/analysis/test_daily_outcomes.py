"""Runs and success rate per day for a case: raw logs grouped in the database, roll-ups for
days that retention has summarised, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reflection.analysis.charts import daily_outcomes_svg
from reflection.analysis.selectors import case_daily_outcomes
from reflection.models import DailyCaseRollup
from tests.reflection.factories import NOW, add_logs

pytestmark = pytest.mark.django_db


def test_every_day_is_listed_with_raw_logs_and_rollups_summed_per_utc_day(make_case):
    case, other = make_case(), make_case()
    # NOW is 12:00 UTC: 11 h ago is today, 13 h ago is yesterday.
    add_logs(case, count=3, success=True, now=NOW, age=timedelta(hours=11))
    add_logs(case, count=1, success=False, now=NOW, age=timedelta(hours=11), error_type="Timeout")
    add_logs(case, count=2, success=False, now=NOW, age=timedelta(hours=13), error_type="Timeout")
    add_logs(case, count=5, success=True, now=NOW, age=timedelta(days=7))  # before the 7-day window
    add_logs(case, count=4, success=True, now=NOW, age=timedelta(minutes=-5))  # after now
    add_logs(other, count=9, success=True, now=NOW, age=timedelta(hours=1))
    DailyCaseRollup.objects.create(case=case, day=(NOW - timedelta(days=5)).date(), runs=10, successes=4,
                                   latency_sum_ms=1000, latency_sq_sum_ms=100000)
    DailyCaseRollup.objects.create(case=other, day=(NOW - timedelta(days=5)).date(), runs=7, successes=7,
                                   latency_sum_ms=700, latency_sq_sum_ms=70000)

    days = case_daily_outcomes(case_id=case.pk, days=7, now=NOW)

    assert [day.day for day in days] == [(NOW - timedelta(days=n)).date() for n in range(6, -1, -1)]
    by_day = {(NOW.date() - day.day).days: (day.runs, day.successes) for day in days}
    assert by_day == {6: (0, 0), 5: (10, 4), 4: (0, 0), 3: (0, 0), 2: (0, 0), 1: (2, 0), 0: (4, 3)}
    assert [day.success_rate for day in days][-2:] == [0.0, 0.75]
    assert days[0].success_rate is None


def test_the_chart_draws_a_point_and_a_bar_per_day_with_runs_and_breaks_the_line_on_empty_days(make_case):
    case = make_case()
    add_logs(case, count=4, success=True, now=NOW, age=timedelta(days=3))
    add_logs(case, count=1, success=False, now=NOW, age=timedelta(days=1))
    add_logs(case, count=1, success=True, now=NOW, age=timedelta(hours=1))

    svg = str(daily_outcomes_svg(case_daily_outcomes(case_id=case.pk, days=5, now=NOW)))

    assert svg.count("<circle") == 3 and svg.count("<rect") == 3
    assert "of 4 runs" in svg and "0.0% of 1 runs" in svg and "100.0% of 1 runs" in svg
    # Day -2 has no runs: the day -3 point stands alone, days -1 and 0 are joined.
    assert svg.count("<polyline") == 1
    assert str(daily_outcomes_svg(case_daily_outcomes(case_id=make_case().pk, days=5, now=NOW))) == (
        '<p class="help">No runs in these days.</p>'
    )


def test_the_case_analysis_page_shows_the_daily_chart(admin_client_logged_in, make_case):
    case = make_case()
    now = timezone.now()
    add_logs(case, count=3, success=True, now=now, age=timedelta(0))
    add_logs(case, count=1, success=False, now=now, age=timedelta(0), error_type="Timeout")

    html = admin_client_logged_in.get(reverse("admin:reflection_case_analysis_page", args=[case.pk])).content.decode()

    assert "Runs per day, last 30 days" in html
    assert f"{now:%Y-%m-%d}: 75.0% of 4 runs" in html
