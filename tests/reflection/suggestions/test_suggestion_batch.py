from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reflection.analysis.services import reflection_run_execute, reflection_run_start
from reflection.models import Suggestion, SuggestionSource, SuggestionStatus, Verification
from tests.reflection.suggestion_helpers import PLAN, REVISED, add_logs, make_suggestion
from tests.support.openai_server import Reply

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


def test_it_verifies_applied_suggestions_in_a_batch_run(make_case, settings, django_user_model, experiments_off):
    from reflection.suggestions.services import suggestion_approve

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

    from reflection.suggestions.generation import after_analysis
    from reflection.suggestions.services import VERIFYING_CACHE_KEY, cases_under_verification

    case = make_case(plan=PLAN)
    cache.delete(VERIFYING_CACHE_KEY)
    cases_under_verification()  # warm, as the first case of a run does
    with django_assert_num_queries(0):
        assert after_analysis(case_id=case.id, analysis={"success_rate": 0.9, "confidence": "ok"}) is None


def test_it_also_suggests_from_the_single_case_step(make_case, settings):
    from reflection.analysis import services

    settings.OPENAI_API_KEY = ""
    case = make_case(plan=PLAN)
    add_logs(case, successes=20, failures=100)
    run = reflection_run_start(case_ids=[case.id], enqueue=False)
    services._analyse_one(case.pk, run)
    assert Suggestion.objects.get().case_id == case.id


LLM_ANSWER = {
    "rationale": "Timeouts dominate.",
    "changes": [{"what": "Add a statement timeout", "why": "TimeoutError in most failed runs"}],
    "revised_plan": REVISED,
    "expected_effect": "Fewer timeouts.",
    "confidence": 0.7,
}


def _age_the_budget_and_the_deferrals(seconds: int = 61) -> None:
    """A minute passes: every slot of the LLM budget and every deferral falls due."""
    from django.db.models import F

    from reflection.models import CaseReflectionState, LLMRateSlot

    LLMRateSlot.objects.update(used_at=F("used_at") - timedelta(seconds=seconds))
    CaseReflectionState.objects.filter(suggestion_due_at__isnull=False).update(
        suggestion_due_at=F("suggestion_due_at") - timedelta(seconds=seconds)
    )


def test_it_defers_weak_cases_beyond_the_llm_budget_and_gives_them_llm_suggestions_later(
    make_case, llm_settings, openai_server
):
    from reflection.models import CaseReflectionState
    from reflection.suggestions.tasks import deferred_suggestions_task

    llm_settings.LLM_CALLS_PER_MINUTE = 5
    openai_server.default = Reply.json(LLM_ANSWER)
    cases = [make_case(plan=PLAN, title=f"Weak case {i}") for i in range(7)]
    for case in cases:
        add_logs(case, successes=30, failures=90)

    run = _run(*cases)

    assert run.cases_analysed == 7 and run.cases_failed == 0
    assert Suggestion.objects.filter(source=SuggestionSource.LLM).count() == 5
    assert not Suggestion.objects.filter(source=SuggestionSource.RULES).exists(), "rate-limited is not 'the LLM failed'"
    waiting = set(CaseReflectionState.objects.filter(suggestion_due_at__isnull=False).values_list("case_id", flat=True))
    without = {c.id for c in cases} - set(Suggestion.objects.values_list("case_id", flat=True))
    assert len(waiting) == 2 and waiting == without
    assert len(openai_server.requests) == 5

    assert deferred_suggestions_task() == {"due": 0, "created": 0, "deferred": 0, "none": 0}, "not due before a slot frees"
    _age_the_budget_and_the_deferrals()
    assert deferred_suggestions_task() == {"due": 2, "created": 2, "deferred": 0, "none": 0}

    assert Suggestion.objects.filter(source=SuggestionSource.LLM, status=SuggestionStatus.PENDING).count() == 7
    assert not CaseReflectionState.objects.filter(suggestion_due_at__isnull=False).exists()
    assert len(openai_server.requests) == 7


def test_it_stops_a_sweep_when_the_budget_is_used_up_again(make_case, llm_settings, openai_server):
    from reflection.models import CaseReflectionState
    from reflection.suggestions.deferral import suggestion_defer
    from reflection.suggestions.generation import suggestions_generate_deferred

    llm_settings.LLM_CALLS_PER_MINUTE = 1
    openai_server.default = Reply.json(LLM_ANSWER)
    first, second = make_case(plan=PLAN, title="First"), make_case(plan=PLAN, title="Second")
    for case in (first, second):
        add_logs(case, successes=30, failures=90)
        suggestion_defer(case_id=case.id, retry_after=1)
    CaseReflectionState.objects.filter(case_id=second.id).update(suggestion_due_at=timezone.now() - timedelta(seconds=5))
    CaseReflectionState.objects.filter(case_id=first.id).update(suggestion_due_at=timezone.now() - timedelta(seconds=9))

    counts = suggestions_generate_deferred(limit=10)

    assert counts == {"due": 2, "created": 1, "deferred": 1, "none": 0}
    assert Suggestion.objects.get().case_id == first.id, "oldest first"
    still = CaseReflectionState.objects.get(case_id=second.id).suggestion_due_at
    assert still > timezone.now() + timedelta(seconds=50), "due again when the slot frees"
    assert CaseReflectionState.objects.get(case_id=first.id).suggestion_due_at is None


def test_it_answers_a_rate_limited_generate_request_with_the_deferral(make_case, llm_settings, openai_server):
    from reflection.suggestions.generation import suggestion_generate_explained

    llm_settings.LLM_CALLS_PER_MINUTE = 1
    openai_server.default = Reply.json(LLM_ANSWER)
    busy, waiting = make_case(plan=PLAN, title="Busy"), make_case(plan=PLAN, title="Waiting")
    add_logs(busy, successes=30, failures=90)
    add_logs(waiting, successes=30, failures=90)
    assert suggestion_generate_explained(case_id=busy.id)[0].source == SuggestionSource.LLM
    suggestion, reason = suggestion_generate_explained(case_id=waiting.id)
    assert suggestion is None and "deferred" in reason
    assert not Suggestion.objects.filter(case=waiting).exists()
