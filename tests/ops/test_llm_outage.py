"""The LLM goes down and comes back: the breaker opens, suggestions fall back to rules without
calling the LLM, /health and /metrics say so, and after the reset period one trial call closes
the breaker and LLM suggestions resume. A real local OpenAI-compatible server plays the LLM."""
from __future__ import annotations

import re
import time

import pytest

from reflection.models import SuggestionSource
from reflection.suggestions.generation import suggestion_generate
from tests.reflection.suggestion_helpers import PLAN, REVISED, add_logs
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db

ANSWER = {
    "rationale": "Most runs time out in the SQL step.",
    "changes": [{"what": "Add a statement timeout", "why": "TimeoutError dominates"}],
    "revised_plan": REVISED,
    "expected_effect": "Fewer timeouts.",
    "confidence": 0.7,
}
RESET_SECONDS = 3.0


def _weak(make_case, title: str):
    case = make_case(plan=PLAN, title=title)
    add_logs(case, successes=40, failures=80)
    return case


def _breaker_metric(anonymous_api) -> float:
    body = anonymous_api.get("/metrics").content.decode()
    return float(re.search(r'^caseloop_breaker_state\{name="llm"\} ([0-9.]+)$', body, re.MULTILINE).group(1))


def test_it_opens_falls_back_to_rules_and_closes_after_recovery(make_case, llm_settings, openai_server, anonymous_api):
    llm_settings.LLM_BREAKER_FAILURES = 2
    llm_settings.LLM_BREAKER_RESET_SECONDS = RESET_SECONDS
    llm_settings.LLM_RETRY_ATTEMPTS = 1
    llm_settings.LLM_CALLS_PER_MINUTE = 1000
    cases = [_weak(make_case, title) for title in ("down 0", "down 1", "down 2", "recovered", "after")]
    openai_server.default = Reply.error(503)  # the LLM is down

    down = [suggestion_generate(case_id=case.id) for case in cases[:3]]
    assert [s.source for s in down] == [SuggestionSource.RULES] * 3
    assert len(openai_server.requests) == 2  # the third never left: the breaker was open
    assert "circuit breaker" in down[2].fallback_reason
    llm = anonymous_api.get("/health").json()["checks"]["llm"]
    assert (llm["status"], llm["breaker"]) == ("down", "open")
    assert anonymous_api.get("/health").status_code == 200  # the LLM is optional: rules cover it
    assert _breaker_metric(anonymous_api) == 2

    openai_server.default = Reply.json(ANSWER)  # the LLM is back
    time.sleep(RESET_SECONDS + 0.1)
    assert anonymous_api.get("/health").json()["checks"]["llm"]["breaker"] == "half_open"
    recovered = suggestion_generate(case_id=cases[3].id)
    assert recovered.source == SuggestionSource.LLM
    assert len(openai_server.requests) == 3
    llm = anonymous_api.get("/health").json()["checks"]["llm"]
    assert (llm["status"], llm["breaker"]) == ("up", "closed")
    assert _breaker_metric(anonymous_api) == 0
    after = suggestion_generate(case_id=cases[4].id)
    assert after.source == SuggestionSource.LLM
