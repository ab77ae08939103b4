from __future__ import annotations

import pytest

from reflection.models import Suggestion, SuggestionSource, SuggestionStatus, Verification
from reflection.services import reflection_run_execute, reflection_run_start
from tests.reflection.suggestion_helpers import PLAN, REVISED, add_logs, make_suggestion

pytestmark = pytest.mark.django_db


def _run(*cases):
    run = reflection_run_start(case_ids=[c.id for c in cases], enqueue=False)
    return reflection_run_execute(run.pk)


def test_it_generates_suggestions_for_weak_cases_in_a_batch_run(make_case, settings):
    settings.OPENAI_API_KEY = ""
    weak, healthy = make_case(plan=PLAN), make_case(plan=PLAN, title="Healthy")
    add_logs(weak, successes=30, failures=90)
    add_logs(healthy, successes=110, failures=10)
    run = _run(weak, healthy)
    assert run.cases_analysed == 2 and run.cases_failed == 0
    suggestion = Suggestion.objects.get()
    assert (suggestion.case_id, suggestion.source, suggestion.status) == (weak.id, SuggestionSource.RULES, SuggestionStatus.PENDING)


def test_it_verifies_applied_suggestions_in_a_batch_run(make_case, settings, django_user_model):
    from reflection.suggestion_services import suggestion_approve

    settings.OPENAI_API_KEY = ""
    case = make_case(plan=PLAN)
    suggestion = make_suggestion(case)
    suggestion_approve(suggestion=suggestion, acting_user=django_user_model.objects.create_user("rev"))
    add_logs(case, version=1, successes=20, failures=80)
    add_logs(case, version=2, successes=90, failures=10)
    _run(case)
    suggestion.refresh_from_db()
    assert suggestion.verification == Verification.IMPROVED
    assert suggestion.verification_detail["after"]["runs"] == 100
    assert list(case.suggestions.values_list("revised_plan", flat=True)) == [REVISED], "an improving case gets no new suggestion"


def test_it_costs_no_query_for_a_healthy_case_without_applied_suggestions(make_case, django_assert_num_queries):
    from django.core.cache import cache

    from reflection.suggester import after_analysis
    from reflection.suggestion_services import VERIFYING_CACHE_KEY, cases_under_verification

    case = make_case(plan=PLAN)
    cache.delete(VERIFYING_CACHE_KEY)
    cases_under_verification()  # warm, as the first case of a run does
    with django_assert_num_queries(0):
        assert after_analysis(case_id=case.id, analysis={"success_rate": 0.9, "confidence": "ok"}) is None


def test_it_also_suggests_from_the_single_case_step(make_case, settings):
    from reflection import services

    settings.OPENAI_API_KEY = ""
    case = make_case(plan=PLAN)
    add_logs(case, successes=20, failures=100)
    run = reflection_run_start(case_ids=[case.id], enqueue=False)
    services._analyse_one(case.pk, run)
    assert Suggestion.objects.get().case_id == case.id
