"""No suggestion repeats a change already applied or rejected (issue #15: right after v2 was
approved, `reflect --case … --suggest` proposed the same timeout-and-retries change v2 has)."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from casebank.models import Case
from reflection.models import Suggestion, SuggestionStatus
from reflection.suggestions.generation import suggestion_generate
from reflection.suggestions.services import suggestion_approve, suggestion_reject
from tests.reflection.suggestion_helpers import PLAN, add_logs

pytestmark = pytest.mark.django_db


def test_it_does_not_propose_the_change_the_current_version_already_has(make_case, django_user_model, settings, experiments_off):
    settings.OPENAI_API_KEY = ""
    reviewer = django_user_model.objects.create_superuser("boss", email="boss@example.com", password="pw")
    case = make_case(plan=PLAN)
    add_logs(case, successes=25, failures=100)  # timeouts: the rules add timeouts and retries
    first = suggestion_generate(case_id=case.pk)
    assert first is not None
    suggestion_approve(suggestion=first, acting_user=reviewer)
    case = Case.objects.get(pk=case.pk)
    assert case.version == 2 and case.plan == first.revised_plan
    add_logs(case, successes=10, failures=110, version=2)  # v2 still times out

    out = StringIO()
    call_command("reflect", "--case", str(case.pk), "--suggest", stdout=out)

    assert "no suggestion: The proposed change is already in version 2." in out.getvalue()
    assert not Suggestion.objects.filter(status=SuggestionStatus.PENDING).exists()


def test_it_does_not_propose_a_change_a_reviewer_rejected(make_case, django_user_model, settings):
    settings.OPENAI_API_KEY = ""
    reviewer = django_user_model.objects.create_superuser("boss", email="boss@example.com", password="pw")
    case = make_case(plan=PLAN)
    add_logs(case, successes=25, failures=100)
    first = suggestion_generate(case_id=case.pk)
    assert first is not None
    suggestion_reject(suggestion=first, acting_user=reviewer, note="retries hide the real problem")

    again = suggestion_generate(case_id=case.pk)

    assert again is None
    assert list(Suggestion.objects.values_list("status", flat=True)) == [SuggestionStatus.REJECTED]
