"""POST /api/reflection/batch queues a run (202) that the task queue executes; GET shows it."""
from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db


def test_it_starts_a_run_in_the_queue_and_reports_it(api, make_case, django_capture_on_commit_callbacks):
    case = make_case()
    add_logs(case, count=2, success=True, now=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/reflection/batch", {}, format="json")

    assert response.status_code == 202, response.json()
    run_id = response.json()["run_id"]
    body = api.get(f"/api/reflection/runs/{run_id}").json()
    assert (body["status"], body["trigger"], body["cases_analysed"]) == ("completed", "api", 1)
    assert body["requested_by"] == "api:test-client"


def test_it_answers_404_for_unknown_runs_and_cases(api):
    assert api.get("/api/reflection/runs/999999").status_code == 404
    assert api.get(f"/api/reflection/runs/{2**70}").status_code == 404
    response = api.post("/api/reflection/batch", {"case_ids": [str(uuid.uuid4())]}, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize("payload", [{"window_days": 0}, {"case_ids": ["x"]}, {"case_ids": "x"}])
def test_it_refuses_bad_batch_input(api, payload):
    assert api.post("/api/reflection/batch", payload, format="json").status_code == 400


def test_it_needs_authentication(anonymous_api):
    assert anonymous_api.post("/api/reflection/batch", {}, format="json").status_code == 401
    assert anonymous_api.get("/api/reflection/runs/1").status_code == 401
