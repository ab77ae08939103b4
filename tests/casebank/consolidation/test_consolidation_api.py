"""POST /api/consolidation/run and /api/consolidation/restore/{id}; `manage.py consolidate`."""
from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from casebank.models import Case, CaseStatus
from tests.conftest import grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_case(make_case):
    case = make_case()
    Case.objects.filter(pk=case.pk).update(success_rate=0.1, usage_count=50,
                                           last_used_at=timezone.now() - timedelta(days=30))
    return case


def test_it_lists_candidates_without_changing_anything(api, low_case):
    response = api.post("/api/consolidation/run", {}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["dry_run"] is True and body["applied"] == 0
    assert [(a["case_id"], a["reason"], a["applied"]) for a in body["actions"]] == [
        (str(low_case.pk), "low_performance", False)
    ]


def test_it_needs_the_permission_to_apply_and_restore(api, api_key, low_case):
    assert api.post("/api/consolidation/run", {"dry_run": False}, format="json").status_code == 403
    grant(api_key[0].user, "run_consolidation")

    response = api.post("/api/consolidation/run", {"dry_run": False}, format="json")
    assert response.status_code == 200 and response.json()["applied"] == 1
    assert Case.objects.get(pk=low_case.pk).status == CaseStatus.ARCHIVED

    response = api.post(f"/api/consolidation/restore/{low_case.pk}", format="json")
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert api.post(f"/api/consolidation/restore/{low_case.pk}", format="json").status_code == 409
    assert api.post(f"/api/consolidation/restore/{uuid.uuid4()}", format="json").status_code == 404


def test_it_refuses_bad_input_and_anonymous_callers(api, anonymous_api):
    assert api.post("/api/consolidation/run", {"dry_run": "maybe"}, format="json").status_code == 400
    assert anonymous_api.post("/api/consolidation/run", {}, format="json").status_code == 401


def test_the_command_is_a_dry_run_unless_told_to_apply(low_case):
    out = StringIO()
    call_command("consolidate", stdout=out)
    assert "would archive" in out.getvalue() and "1 candidates" in out.getvalue()
    assert Case.objects.get(pk=low_case.pk).status == CaseStatus.ACTIVE

    call_command("consolidate", "--apply", stdout=out)
    assert Case.objects.get(pk=low_case.pk).status == CaseStatus.ARCHIVED
