from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from reflection.models import Suggestion
from tests.reflection.suggestion_helpers import PLAN, add_logs

pytestmark = pytest.mark.django_db


def test_it_proposes_an_improvement_for_a_weak_case(make_case, settings):
    settings.OPENAI_API_KEY = ""
    case = make_case(plan=PLAN)
    add_logs(case, successes=25, failures=100)
    out = StringIO()
    call_command("reflect", "--case", str(case.id), "--suggest", stdout=out)
    suggestion = Suggestion.objects.get(case=case)
    assert f"suggestion #{suggestion.pk} (rules) is pending review" in out.getvalue()


def test_it_says_why_a_healthy_case_gets_none(make_case):
    case = make_case(plan=PLAN)
    add_logs(case, successes=110, failures=10)
    out = StringIO()
    call_command("reflect", "--case", str(case.id), "--suggest", stdout=out)
    assert "no suggestion: Success rate 92% is at or above 80%." in out.getvalue()
    assert not Suggestion.objects.exists()
