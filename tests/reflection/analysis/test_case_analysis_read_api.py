"""GET /api/reflection/cases/{id}/analysis: the stored analyses, read without recomputing."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from reflection.models import CaseAnalysis
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db


def _url(case_id) -> str:
    return f"/api/reflection/cases/{case_id}/analysis"


def test_an_unknown_case_is_404(api):
    response = api.get(_url(uuid.uuid4()))
    assert response.status_code == 404
    assert "No case with id" in response.json()["detail"]


def test_a_case_never_analysed_has_no_analysis_yet(api, make_case):
    case = make_case()
    body = api.get(_url(case.pk)).json()
    assert body == {"case_id": str(case.pk), "analysed_at": None, "analysis": None, "history": [],
                    "suggestion_refused": None}


def test_it_returns_the_latest_analysis_as_analyze_returned_it_and_the_trend(api, make_case):
    case = make_case()
    now = timezone.now()
    add_logs(case, count=3, success=True, ms=100, now=now, age=timedelta(hours=3))
    first = api.post("/api/reflection/analyze", {"case_id": str(case.pk)}, format="json").json()
    add_logs(case, count=1, success=False, ms=900, now=now, age=timedelta(hours=1), error_type="Timeout")
    second = api.post("/api/reflection/analyze", {"case_id": str(case.pk)}, format="json").json()
    assert first["success_rate"] == 1.0 and second["success_rate"] == 0.75

    before = CaseAnalysis.objects.count()
    body = api.get(_url(case.pk)).json()
    assert CaseAnalysis.objects.count() == before  # a read stores nothing
    assert body["analysis"] == second
    assert [point["success_rate"] for point in body["history"]] == [0.75, 1.0]  # newest first
    assert [point["total_executions"] for point in body["history"]] == [4, 3]
    assert body["analysed_at"] == body["history"][0]["analysed_at"]


def test_history_can_be_limited_or_left_out(api, make_case):
    case = make_case()
    add_logs(case, count=2, success=True, now=timezone.now())
    for _ in range(3):
        api.post("/api/reflection/analyze", {"case_id": str(case.pk)}, format="json")
    assert len(api.get(_url(case.pk), {"history": 2}).json()["history"]) == 2
    body = api.get(_url(case.pk), {"history": 0}).json()
    assert body["history"] == [] and body["analysis"]["total_executions"] == 2


@pytest.mark.parametrize("history", ["-1", "366", "many"])
def test_a_bad_history_count_is_400(api, make_case, history):
    response = api.get(_url(make_case().pk), {"history": history})
    assert response.status_code == 400
    assert "history" in response.json()["errors"]
