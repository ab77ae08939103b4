"""The execution-log admin: filters that never list every case or count every row, no deletes."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reflection.logs.admin import EstimatedCountPaginator
from reflection.models import ExecutionLog
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db

URL = reverse("admin:reflection_executionlog_changelist")


@pytest.fixture
def logs(make_case):
    busy, quiet = make_case(title="Busy case"), make_case(title="Quiet case")
    now = timezone.now()
    add_logs(busy, count=6, success=True, now=now)
    add_logs(busy, count=4, success=False, error_type="TimeoutError", now=now)
    add_logs(busy, count=3, success=False, error_type="KeyError", now=now, age=timedelta(days=20))
    add_logs(quiet, count=2, success=True, now=now)
    return busy, quiet


def _shown(response) -> set:
    return {log.pk for log in response.context["cl"].result_list}


def test_it_filters_by_one_case_without_listing_the_cases(admin_client_logged_in, logs):
    busy, quiet = logs
    with CaptureQueriesContext(connection) as queries:
        response = admin_client_logged_in.get(URL, {"case__id__exact": str(quiet.pk)})
    assert response.status_code == 200
    assert _shown(response) == set(ExecutionLog.objects.filter(case=quiet).values_list("pk", flat=True))
    assert "Quiet case" in response.content.decode()  # the chosen case, in the filter sidebar
    case_reads = [q["sql"] for q in queries.captured_queries if 'FROM "casebank_case"' in q["sql"]]
    assert case_reads and all("WHERE" in sql for sql in case_reads)
    # Without the filter there is no case choice list at all.
    assert "Busy case" not in admin_client_logged_in.get(URL, {"success__exact": "0"}).content.decode().split(
        'id="changelist-filter"')[1].split("</nav>")[0]


def test_it_refuses_a_case_filter_that_is_not_an_id(admin_client_logged_in, logs):
    response = admin_client_logged_in.get(URL, {"case__id__exact": "nope"})
    assert response.status_code == 302 and "e=1" in response["Location"]


def test_it_filters_by_outcome_error_type_and_date(admin_client_logged_in, logs):
    busy, _ = logs
    failures = admin_client_logged_in.get(URL, {"success__exact": "0"})
    assert len(_shown(failures)) == 7
    timeouts = admin_client_logged_in.get(URL, {"error_type": "TimeoutError", "case__id__exact": str(busy.pk)})
    assert {log.error_type for log in timeouts.context["cl"].result_list} == {"TimeoutError"}
    assert len(_shown(timeouts)) == 4
    now = timezone.now()  # the parameters of the "Past 7 days" choice, as the filter builds them
    week = admin_client_logged_in.get(URL, {"created_at__gte": str(now - timedelta(days=7)),
                                            "created_at__lt": str(now + timedelta(days=1))})
    assert len(_shown(week)) == 12  # not the three 20 days old


def test_a_filtered_list_is_counted_only_up_to_the_limit(admin_client_logged_in, logs, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "COUNT_LIMIT", 5)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client_logged_in.get(URL, {"success__exact": "1"})
    assert response.context["cl"].result_count == 5
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(")]
    assert counts and all("LIMIT 6" in sql for sql in counts), counts


def test_logs_cannot_be_deleted_from_the_admin(admin_client_logged_in, logs):
    response = admin_client_logged_in.get(URL)
    action_form = response.context["action_form"]  # None: no action at all is offered
    assert action_form is None or "delete_selected" not in dict(action_form.fields["action"].choices)
    some = list(ExecutionLog.objects.values_list("pk", flat=True)[:3])
    admin_client_logged_in.post(URL, {"action": "delete_selected", "_selected_action": some, "post": "yes"})
    assert ExecutionLog.objects.count() == 15
    log = ExecutionLog.objects.first()
    assert admin_client_logged_in.get(reverse("admin:reflection_executionlog_delete", args=[log.pk])).status_code == 403


def test_the_case_page_links_to_its_logs(admin_client_logged_in, logs):
    busy, _ = logs
    page = admin_client_logged_in.get(reverse("admin:casebank_case_change", args=[busy.pk])).content.decode()
    assert f"{URL}?case__id__exact={busy.pk}" in page


def test_a_logs_page_links_its_session_and_case(admin_client_logged_in, make_case):
    case = make_case()
    session_id = uuid.uuid4()
    log = ExecutionLog.objects.create(case=case, session_id=session_id, success=True, execution_time_ms=5)
    html = admin_client_logged_in.get(reverse("admin:reflection_executionlog_change", args=[log.pk])).content.decode()
    assert f'href="/admin/agents/session/{session_id}/change/"' in html
    assert f'href="/admin/casebank/case/{case.pk}/change/"' in html
