from __future__ import annotations

import json

import pytest
from django.core import mail

from casebank.cases import services as case_services
from reflection.models import LLMCall, Suggestion, SuggestionSource, SuggestionStatus
from reflection.suggestions.generation import suggestion_generate
from tests.reflection.suggestion_helpers import PLAN, REVISED, add_logs
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db

LLM_ANSWER = {
    "rationale": "62% of runs time out in the SQL step.",
    "changes": [{"what": "Add a statement timeout", "why": "TimeoutError dominates"}],
    "revised_plan": REVISED,
    "expected_effect": "Success rate from 38% to about 70%.",
    "confidence": 0.7,
}


@pytest.fixture
def weak_case(make_case, django_user_model):
    django_user_model.objects.create_superuser("reviewer", email="reviewer@example.com", password="pw")
    case = make_case(plan=PLAN)
    add_logs(case, successes=50, failures=80)
    return case


def _neighbours(make_case):
    good = make_case(title="Quarterly revenue by region", query="Show quarterly revenue by region",
                     plan=[{"agent": "data_analysis", "action": "Use the revenue rollup table"}])
    bad = make_case(title="Monthly revenue by region raw", query="Show monthly revenue by region from raw orders",
                    plan=[{"agent": "data_analysis", "action": "Scan raw orders"}])
    case_services.case_update_metrics(case_id=good.id, metrics=case_services.CaseMetrics(0.95, 300))
    case_services.case_update_metrics(case_id=bad.id, metrics=case_services.CaseMetrics(0.2, 300))
    return good, bad


def test_it_asks_the_llm_with_the_evidence_and_stores_its_answer(
    weak_case, make_case, llm_settings, openai_server, django_capture_on_commit_callbacks
):
    good, bad = _neighbours(make_case)
    openai_server.reply(Reply.json(LLM_ANSWER, prompt_tokens=900, completion_tokens=300))
    with django_capture_on_commit_callbacks(execute=True):
        suggestion = suggestion_generate(case_id=weak_case.id)

    assert suggestion.source == SuggestionSource.LLM and suggestion.status == SuggestionStatus.PENDING
    assert suggestion.revised_plan == REVISED and suggestion.current_plan == PLAN
    assert (suggestion.base_version, suggestion.model, suggestion.tokens_in, suggestion.tokens_out) == (1, "test-model", 900, 300)
    assert suggestion.confidence == 0.7 and suggestion.changes == LLM_ANSWER["changes"]
    prompt = json.loads(openai_server.requests[0]["messages"][-1]["content"].split("\n", 1)[1].rsplit("\n\nReturn", 1)[0])
    assert prompt["analysis"]["total_executions"] == 130
    assert prompt["common_errors"][0]["error_type"] == "TimeoutError"
    assert prompt["failing_examples"][0]["error_message"] == "query 4711 timed out after 30 s"
    assert [c["title"] for c in prompt["similar_successes"]] == [good.title]
    assert [c["title"] for c in prompt["similar_failures"]] == [bad.title]
    assert LLMCall.objects.get().purpose == "suggestion"
    assert len(mail.outbox) == 1 and "reviewer@example.com" in mail.outbox[0].to
    assert f"#{suggestion.pk}" in mail.outbox[0].subject


def test_it_uses_rules_when_no_llm_is_configured(weak_case, settings):
    settings.OPENAI_API_KEY = ""
    suggestion = suggestion_generate(case_id=weak_case.id)
    assert suggestion.source == SuggestionSource.RULES
    assert suggestion.fallback_reason == "No LLM configured."
    assert all(step["retry"] == {"attempts": 3, "backoff": "exponential"} for step in suggestion.revised_plan)
    assert "TimeoutError" in suggestion.rationale


def test_it_adds_a_guard_step_for_a_non_timeout_error(make_case, settings):
    settings.OPENAI_API_KEY = ""
    case = make_case(plan=PLAN)
    add_logs(case, successes=30, failures=90, error_type="SchemaError", message="column region_id missing")
    suggestion = suggestion_generate(case_id=case.id)
    assert suggestion.revised_plan[0]["guard"] == "SchemaError"
    assert suggestion.revised_plan[1:] == PLAN


def test_it_falls_back_to_rules_when_the_llm_keeps_failing_and_the_breaker_opens(
    make_case, llm_settings, openai_server
):
    llm_settings.LLM_BREAKER_FAILURES = 1
    openai_server.default = Reply.error(500)
    first, second = make_case(plan=PLAN), make_case(plan=PLAN, title="Other")
    add_logs(first, successes=40, failures=80)
    add_logs(second, successes=40, failures=80)
    one = suggestion_generate(case_id=first.id)
    two = suggestion_generate(case_id=second.id)
    assert (one.source, two.source) == (SuggestionSource.RULES, SuggestionSource.RULES)
    assert "failed 3 times" in one.fallback_reason
    assert "circuit breaker" in two.fallback_reason
    assert len(openai_server.requests) == 3


def test_it_rejects_an_llm_plan_without_agents(weak_case, llm_settings, openai_server):
    openai_server.reply(Reply.json({**LLM_ANSWER, "revised_plan": [{"action": "no agent"}]}))
    suggestion = suggestion_generate(case_id=weak_case.id)
    assert suggestion.source == SuggestionSource.RULES
    assert "must name its agent" in suggestion.fallback_reason


@pytest.mark.parametrize(
    ("successes", "failures"),
    [(70, 50), (100, 20), (10, 30)],  # 58 % (not weak), 83 % (never), 40 runs (insufficient data)
)
def test_it_makes_no_suggestion_for_healthy_cases_or_thin_data(make_case, llm_settings, openai_server, successes, failures):
    case = make_case(plan=PLAN)
    add_logs(case, successes=successes, failures=failures)
    assert suggestion_generate(case_id=case.id) is None
    assert not Suggestion.objects.exists() and openai_server.requests == []


def test_it_never_suggests_at_or_above_point_eight_even_if_told_the_data_is_ok(make_case, settings):
    settings.OPENAI_API_KEY = ""
    case = make_case(plan=PLAN)
    analysis = {"success_rate": 0.8, "confidence": "ok", "total_executions": 500, "common_errors": []}
    assert suggestion_generate(case_id=case.id, analysis=analysis) is None


def test_it_keeps_one_pending_suggestion_per_case_version(weak_case, settings):
    settings.OPENAI_API_KEY = ""
    first = suggestion_generate(case_id=weak_case.id)
    assert suggestion_generate(case_id=weak_case.id) is None
    case_services.case_update(case=weak_case, actor="editor", plan=REVISED)
    add_logs(weak_case, successes=50, failures=80, version=2)  # v2 is judged on its own runs
    newer = suggestion_generate(case_id=weak_case.id)
    first.refresh_from_db()
    assert first.status == SuggestionStatus.STALE and "version 2" in first.stale_reason
    assert newer.base_version == 2
