"""POST /api/reflection/analyze: the analysis shape, and 4xx for every bad input."""
from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db

FIELDS = {
    "case_id", "window_days", "total_executions", "successes", "success_rate", "weighted_success_rate",
    "reuse_helped", "reuse_harmed", "common_errors", "latency_ms", "slow", "anomalies", "confidence",
    "case_version", "versions",
}


def test_it_returns_the_analysis_and_stores_it(api, make_case):
    case = make_case()
    add_logs(case, count=3, success=True, ms=100, now=timezone.now())
    add_logs(case, count=1, success=False, ms=300, error_type="Timeout", error_message="after 30 s", now=timezone.now())

    response = api.post("/api/reflection/analyze", {"case_id": str(case.pk), "window_days": 7}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == FIELDS
    assert (body["total_executions"], body["successes"], body["success_rate"]) == (4, 3, 0.75)
    assert body["window_days"] == 7
    assert body["common_errors"][0] == {
        "error_type": "Timeout", "count": 1, "percentage": 25.0, "example": "after 30 s",
        "templates": [{"template": "after <n> s", "count": 1}],
    }
    assert body["latency_ms"]["p50"] == 100.0
    assert case.analyses.count() == 1


def test_it_answers_404_for_an_unknown_case(api):
    response = api.post("/api/reflection/analyze", {"case_id": str(uuid.uuid4())}, format="json")
    assert response.status_code == 404
    assert "detail" in response.json() and "errors" in response.json()


@pytest.mark.parametrize("window", [0, 366, -1, "a", 2.5, True])
def test_it_refuses_a_window_outside_1_to_365_days(api, make_case, window):
    case = make_case()
    response = api.post("/api/reflection/analyze", {"case_id": str(case.pk), "window_days": window}, format="json")
    assert response.status_code == 400
    assert "window_days" in response.json()["errors"]


@pytest.mark.parametrize("payload", [{}, {"case_id": "nope"}, {"case_id": ["x"]}, []])
def test_it_refuses_malformed_input(api, payload):
    response = api.post("/api/reflection/analyze", payload, format="json")
    assert response.status_code == 400


def test_it_needs_authentication(anonymous_api, make_case):
    case = make_case()
    response = anonymous_api.post("/api/reflection/analyze", {"case_id": str(case.pk)}, format="json")
    assert response.status_code == 401
