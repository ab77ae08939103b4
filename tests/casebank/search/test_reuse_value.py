"""Reuse value (issue #18): per case, how often a run of its plan helped or harmed lately,
time-decayed like the weighted success rate, stored by every analysis, used in ranking and
shown in the API and admin."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from casebank.models import Case
from casebank.search.selectors import case_search
from reflection.analysis.services import case_analysis_record, reflection_run_here
from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db

HALF_LIFE_DAYS = 3.5


def _runs(case, *, successes: int, failures: int, age: timedelta) -> None:
    now = timezone.now()
    ExecutionLog.objects.bulk_create([
        ExecutionLog(case=case, case_version=case.version, success=i < successes, execution_time_ms=300,
                     error_type="" if i < successes else "TimeoutError",
                     error_message="" if i < successes else "timed out after 30 s",
                     created_at=now - age - timedelta(seconds=i))
        for i in range(successes + failures)
    ])


def test_an_analysis_stores_the_time_decayed_helped_and_harmed_runs(make_case, settings):
    settings.REFLECTION_HALF_LIFE_DAYS = HALF_LIFE_DAYS
    case = make_case()
    _runs(case, successes=30, failures=10, age=timedelta(minutes=5))  # now: weight ~1
    _runs(case, successes=20, failures=0, age=timedelta(days=7))  # two half-lives ago: weight ~1/4
    case_analysis_record(case_id=case.id)
    case.refresh_from_db()
    assert case.reuse_helped == pytest.approx(30 + 20 / 4, rel=0.02)
    assert case.reuse_harmed == pytest.approx(10, rel=0.02)
    # The plain 30-day rate counts the old runs in full; the reuse value does not.
    assert case.success_rate == pytest.approx(50 / 60, abs=1e-3)


def test_a_batch_run_stores_it_too(make_case):
    case = make_case()
    _runs(case, successes=8, failures=2, age=timedelta(hours=1))
    reflection_run_here(requested_by="test")  # the whole bank: the set-based batch path
    case.refresh_from_db()
    assert case.reuse_helped == pytest.approx(8, rel=0.02) and case.reuse_harmed == pytest.approx(2, rel=0.02)


def test_recent_success_outranks_the_same_record_long_ago_at_equal_relevance(make_case, settings):
    settings.REFLECTION_HALF_LIFE_DAYS = HALF_LIFE_DAYS
    recent = make_case(title="Refund policy A", query="refund policy for enterprise customers")
    stale = make_case(title="Refund policy B", query="refund policy for enterprise customers")
    # Same 90 % record; `stale` earned it three weeks ago and has been failing since.
    _runs(recent, successes=45, failures=5, age=timedelta(hours=2))
    _runs(stale, successes=180, failures=20, age=timedelta(days=21))
    _runs(stale, successes=2, failures=8, age=timedelta(hours=2))
    for case in (recent, stale):
        case_analysis_record(case_id=case.id)
    recent.refresh_from_db()
    stale.refresh_from_db()
    assert stale.success_rate > recent.success_rate - 0.1  # the 30-day rates look alike
    hits = case_search(query="refund policy for enterprise customers", mode="bm25", k=2)
    assert [hit.case.id for hit in hits] == [recent.id, stale.id]
    assert hits[0].relevance == pytest.approx(hits[1].relevance)


def test_the_api_and_admin_show_it(make_case, api, admin_client_logged_in):
    case = make_case()
    Case.objects.filter(pk=case.pk).update(reuse_helped=12.5, reuse_harmed=2.5)
    body = api.get(f"/api/cases/{case.id}/").json()
    assert body["reuse_helped"] == 12.5 and body["reuse_harmed"] == 2.5
    assert body["reuse_value"] == pytest.approx((12.5 + 5) / (15 + 10), abs=1e-4)
    page = admin_client_logged_in.get(f"/admin/casebank/case/{case.id}/change/").content.decode()
    assert "Reuse value" in page and "12.5 helped" in page and "2.5 harmed" in page
