"""Reflection never promotes a case pending review: only a reviewer approves it."""
from __future__ import annotations

import pytest

from casebank.models import Case, CaseStatus, ReviewState
from casebank.search.selectors import case_search
from reflection.analysis.services import reflection_run_execute, reflection_run_start
from reflection.models import Suggestion
from reflection.suggestions.generation import suggestion_generate_explained
from tests.reflection.suggestion_helpers import PLAN, add_logs

pytestmark = pytest.mark.django_db

QUERY = "Weekly count of refund requests by product line"


def _run(case):
    return reflection_run_execute(reflection_run_start(case_ids=[case.id], enqueue=False).pk)


def test_it_leaves_a_pending_case_pending_and_unretrieved_at_full_success(make_case):
    case = make_case(title="Refund requests", query=QUERY, plan=PLAN, review_state=ReviewState.PENDING)
    add_logs(case, successes=120, failures=0)
    run = _run(case)
    case.refresh_from_db()
    assert (run.cases_analysed, case.success_rate) == (1, 1.0)
    assert (case.review_state, case.status) == (ReviewState.PENDING, CaseStatus.ACTIVE)
    assert not case.review_changes.exists()
    assert case.id not in {hit.case.id for hit in case_search(query=QUERY, k=5)}


def test_it_flags_a_failing_pending_case_but_suggests_nothing_for_it(make_case, settings):
    settings.OPENAI_API_KEY = ""
    case = make_case(title="Refund requests", query=QUERY, plan=PLAN, review_state=ReviewState.PENDING)
    add_logs(case, successes=20, failures=100)
    _run(case)
    case = Case.objects.get(pk=case.pk)
    assert (case.review_state, case.status) == (ReviewState.PENDING, CaseStatus.WARNING)
    assert not Suggestion.objects.exists()
    assert "pending review" in suggestion_generate_explained(case_id=case.id)[1]
