"""The admin home: its figures match the database and each links to the list of those rows."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import SessionStatus
from reflection.models import ExecutionLog
from tests.config.dashboard_data import fill_loop
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_loop(make_case):
    return fill_loop(make_case)


def _board(client):
    response = client.get("/admin/")
    assert response.status_code == 200
    return response, response.context["dashboard"]


def _listed(client, url: str) -> int:
    """How many rows the admin list at `url` shows (its own count, as the page says it)."""
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["cl"].result_count


def test_it_counts_what_needs_a_person_as_the_database_does(admin_client_logged_in, busy_loop):
    _, board = _board(admin_client_logged_in)
    assert board.figure("pending_suggestions").value == 2
    assert board.figure("new_cases").value == 1
    assert board.figure("regressions").value == 1
    assert board.figure("experiments_deciding").value == 1
    assert board.figure("cases_warning").value == 1
    assert board.figure("logs_24h").value == 5
    assert board.figure("success_24h").value == "60.0%"
    assert board.figure("reflection_runs_24h").value == 2
    assert board.figure("reflection_runs_failed_24h").value == 1
    assert board.figure(f"sessions_{SessionStatus.FAILED}").value == 1
    assert board.figure(f"sessions_{SessionStatus.COMPLETED}").value == 1
    assert board.llm["calls"] == 2 and board.llm["failed"] == 1
    assert board.llm["tokens"] == 100 + 20 + 10 + 5
    assert board.llm["spend_usd"] == pytest.approx(0.75)
    # One completed run: 28 successes of 40 runs over the cases it analysed.
    assert [rate for _, rate, _ in board.trend] == [pytest.approx(0.7)]
    # add_logs stores each log at its run time, hours ago: nothing in the last hour.
    assert sum(n for _, n in board.ingestion_per_minute) == 0


def test_it_links_each_figure_to_the_list_of_the_same_rows(admin_client_logged_in, busy_loop):
    _, board = _board(admin_client_logged_in)
    for figure in board.needs_person + board.health + board.sessions:
        if figure.key == "success_24h":
            # The link lists the failures of the last 24 h.
            assert _listed(admin_client_logged_in, figure.url) == 2
            continue
        assert _listed(admin_client_logged_in, figure.url) == figure.value, figure.key
    assert _listed(admin_client_logged_in, board.llm["calls_url"]) == board.llm["calls"]
    assert _listed(admin_client_logged_in, board.llm["failed_url"]) == board.llm["failed"]


def test_it_counts_logs_stored_per_minute_of_the_last_hour(admin_client_logged_in, make_case):
    case = make_case()
    now = timezone.now()
    add_logs(case, count=3, now=now, age=timedelta(days=2), ingested_at=now)  # a back-dated import, stored now
    add_logs(case, count=2, now=now, age=timedelta(hours=2))  # stored two hours ago: outside the chart
    _, board = _board(admin_client_logged_in)
    assert len(board.ingestion_per_minute) == 60
    assert board.ingestion_per_minute[-1][1] == 3
    assert ExecutionLog.objects.count() == 5


def test_it_renders_the_figures_and_svg_charts_without_a_cdn(admin_client_logged_in, busy_loop):
    response, _ = _board(admin_client_logged_in)
    html = response.content.decode()
    assert 'data-figure="pending_suggestions"' in html
    assert html.count("<svg") >= 2
    assert not re.search(r'<script[^>]+src="https?://', html)
    # The app list is still there, below the dashboard.
    assert "/admin/casebank/case/" in html


def test_it_keeps_the_dashboard_to_staff(client, busy_loop):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_sends_the_site_root_to_the_dashboard_and_answers_the_favicon(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"


def test_it_reads_no_more_than_a_fixed_number_of_queries(admin_client_logged_in, busy_loop, django_assert_max_num_queries):
    with django_assert_max_num_queries(25):
        admin_client_logged_in.get("/admin/")


def test_it_serves_cached_figures_for_the_period_and_says_how_fresh(admin_client_logged_in, make_case, settings):
    settings.DASHBOARD_CACHE_SECONDS = 30
    first, board = _board(admin_client_logged_in)
    assert board.figure("logs_24h").value == 0
    assert "computed at most once every 30 s" in first.content.decode()
    add_logs(make_case(), count=3, now=timezone.now(), age=timedelta(minutes=5))
    again, cached = _board(admin_client_logged_in)
    # Within the period: the same figures and the same moment they were computed, shown.
    assert cached.figure("logs_24h").value == 0 and cached.now == board.now
    assert f'data-figures-as-of="{board.now.isoformat()}' in again.content.decode()
    settings.DASHBOARD_CACHE_SECONDS = 0
    _, fresh = _board(admin_client_logged_in)
    assert fresh.figure("logs_24h").value == 3
