"""Admin: the per-case analysis page with its server-side SVG chart, and the runs list."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reflection.analysis.services import case_analysis_record
from reflection.models import ReflectionRun
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db


def test_it_shows_the_trend_chart_rates_errors_and_percentiles(admin_client_logged_in, make_case):
    case = make_case(title="Revenue by region")
    now = timezone.now()
    add_logs(case, count=3, success=True, ms=100, now=now, age=timedelta(hours=2))
    case_analysis_record(case_id=case.pk)
    add_logs(case, count=1, success=False, ms=900, now=now, age=timedelta(hours=1), error_type="Timeout",
             error_message="timed out after 30 s")
    case_analysis_record(case_id=case.pk)

    response = admin_client_logged_in.get(reverse("admin:reflection_case_analysis_page", args=[case.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    trend = html[html.index('aria-label="Success rate trend"'):]
    assert trend.count("<circle") == 2  # one point per stored analysis
    # No external assets (a CSRF token may contain any letters, so look for URLs, not words).
    assert 'src="http' not in html and 'href="http' not in html and "//cdn." not in html
    assert "Timeout" in html and "timed out after &lt;n&gt; s" in html
    # p95: rank 0.95 * 3 = 2.85 over [100, 100, 100, 900] -> 100 + 0.85 * 800 = 780
    assert "Weighted success rate" in html and "p95 780.0" in html
    assert "75 %" in html  # success rate 3/4


def test_it_lists_runs_and_starts_one(admin_client_logged_in, make_case, django_capture_on_commit_callbacks):
    make_case()
    assert admin_client_logged_in.get(reverse("admin:reflection_reflectionrun_changelist")).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged_in.post(reverse("admin:reflection_run_start"))
    assert response.status_code == 302
    run = ReflectionRun.objects.get()
    assert (run.trigger, run.status) == ("admin", "completed")
    assert admin_client_logged_in.get(reverse("admin:reflection_caseanalysis_changelist")).status_code == 200


def test_staff_without_permission_cannot_start_runs(client, staff_user):
    client.force_login(staff_user)
    assert client.post(reverse("admin:reflection_run_start")).status_code == 403
    assert not ReflectionRun.objects.exists()
