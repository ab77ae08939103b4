"""Every reflection path refreshes the verification of applied suggestions (issue #15: only a
batch run did; `reflect --case` and `POST /api/reflection/analyze` left it as it was)."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from reflection.models import Suggestion, Verification
from reflection.suggestions.services import suggestion_approve
from tests.reflection.suggestion_helpers import PLAN, add_logs, make_suggestion

# Experiments off: approval applies at once and verification compares before with after
# (tests/reflection/experiments covers the default).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("experiments_off")]


def _regressing(make_case, django_user_model) -> Suggestion:
    reviewer = django_user_model.objects.create_superuser("boss", email="boss@example.com", password="pw")
    case = make_case(plan=PLAN)
    suggestion = suggestion_approve(suggestion=make_suggestion(case), acting_user=reviewer)
    add_logs(case, version=1, successes=85, failures=15)
    add_logs(case, version=2, successes=20, failures=20)
    assert suggestion.verification == Verification.PENDING
    return suggestion


def test_reflect_case_refreshes_verification(make_case, django_user_model):
    suggestion = _regressing(make_case, django_user_model)

    call_command("reflect", "--case", str(suggestion.case_id))

    assert Suggestion.objects.get(pk=suggestion.pk).verification == Verification.REGRESSED


def test_the_analyze_api_refreshes_verification(make_case, django_user_model, api):
    suggestion = _regressing(make_case, django_user_model)

    response = api.post("/api/reflection/analyze", {"case_id": str(suggestion.case_id)}, format="json")

    assert response.status_code == 200, response.content
    assert Suggestion.objects.get(pk=suggestion.pk).verification == Verification.REGRESSED
