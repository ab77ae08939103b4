from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from reflection.llm import LLMError, LLMUnavailable, get_llm_client
from reflection.llm.client import backoff_delay
from reflection.models import LLMCall, LLMOutcome, LLMRateSlot
from tests.support.openai_server import Reply

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "number"}},
    "required": ["answer", "score"],
}
MESSAGES = [{"role": "user", "content": "Rate this plan."}]


def _ask(**kw):
    return get_llm_client().complete_json(purpose="test", messages=MESSAGES, schema=SCHEMA, **kw)


def test_it_is_none_without_configuration(settings):
    settings.OPENAI_API_KEY = ""
    settings.LLM_MODEL = ""
    assert get_llm_client() is None


def test_it_returns_valid_json_with_tokens_and_cost(llm_settings, openai_server):
    openai_server.reply(Reply.json({"answer": "fine", "score": 0.9}, prompt_tokens=1000, completion_tokens=2000))
    result = _ask()
    assert result.data == {"answer": "fine", "score": 0.9}
    assert (result.model, result.tokens_in, result.tokens_out) == ("test-model", 1000, 2000)
    assert result.cost_usd == pytest.approx(0.5 + 3.0)
    request = openai_server.requests[0]
    assert request["response_format"] == {"type": "json_object"}
    assert request["model"] == "test-model"
    assert "JSON Schema" in request["messages"][0]["content"]
    assert request["messages"][-1] == MESSAGES[0]
    call = LLMCall.objects.get()
    assert (call.purpose, call.outcome, call.attempts, call.tokens_in, call.tokens_out) == ("test", "ok", 1, 1000, 2000)
    assert call.cost_usd == pytest.approx(3.5)


def test_it_retries_malformed_json_and_tells_the_model_why(llm_settings, openai_server):
    openai_server.reply(Reply.text("{not json"), Reply.json({"answer": "x"}), Reply.json({"answer": "ok", "score": 1}))
    result = _ask()
    assert result.data == {"answer": "ok", "score": 1}
    assert len(openai_server.requests) == 3
    assert "rejected" in openai_server.requests[1]["messages"][-1]["content"]
    assert "score" in openai_server.requests[2]["messages"][-1]["content"]
    assert result.tokens_in == 300


def test_it_raises_llm_error_after_three_malformed_answers(llm_settings, openai_server):
    openai_server.reply(*[Reply.text("nope")] * 3)
    with pytest.raises(LLMError) as info:
        _ask()
    assert not isinstance(info.value, LLMUnavailable)
    assert LLMCall.objects.get().outcome == LLMOutcome.INVALID_OUTPUT


def test_it_backs_off_after_a_429_and_then_succeeds(llm_settings, openai_server):
    openai_server.reply(Reply.error(429), Reply.json({"answer": "late", "score": 0.1}))
    assert _ask().data["answer"] == "late"
    assert len(openai_server.requests) == 2
    assert LLMCall.objects.get().attempts == 2


def test_it_gives_up_on_a_slow_answer_after_timeouts(llm_settings, openai_server):
    openai_server.reply(*[Reply.json({"answer": "slow", "score": 1}, delay=1.0)] * 3)
    with pytest.raises(LLMError):
        _ask(timeout=0.2)
    call = LLMCall.objects.get()
    assert call.outcome == LLMOutcome.ERROR and call.attempts == 3
    assert "Timeout" in call.error


def test_it_ends_a_slow_call_at_its_total_deadline(llm_settings, openai_server):
    openai_server.default = Reply.json({"answer": "slow", "score": 1}, delay=3.0)
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        _ask(total_timeout=1.0)
    assert 0.9 <= time.monotonic() - started < 1.6, "one attempt cut to the 1 s left, no second one"
    assert len(openai_server.requests) == 1
    assert "within 1.0 s" in str(info.value)
    assert "deadline of 1.0 s reached" in LLMCall.objects.get().error


def test_it_does_not_pause_for_a_retry_past_the_deadline(llm_settings, openai_server):
    llm_settings.LLM_RETRY_BASE_SECONDS = 5.0
    llm_settings.LLM_RETRY_CAP_SECONDS = 5.0
    openai_server.reply(Reply.error(500), Reply.json({"answer": "late", "score": 1}))
    started = time.monotonic()
    with pytest.raises(LLMError):
        _ask(total_timeout=2.0)
    assert time.monotonic() - started < 1.0, "a 5 s backoff does not fit in 2 s: give up at once"
    assert len(openai_server.requests) == 1


def test_it_opens_the_breaker_after_five_failed_calls(llm_settings, openai_server):
    llm_settings.LLM_CALLS_PER_MINUTE = 15
    openai_server.default = Reply.error(500)
    for _ in range(5):
        with pytest.raises(LLMError):
            _ask()
    assert len(openai_server.requests) == 15
    with pytest.raises(LLMUnavailable) as info:
        _ask()
    assert info.value.reason == "breaker_open"
    assert len(openai_server.requests) == 15, "an open breaker sends nothing"
    assert LLMCall.objects.filter(outcome=LLMOutcome.BREAKER_OPEN).count() == 1


def test_it_half_opens_after_the_reset_period(llm_settings, openai_server):
    llm_settings.LLM_BREAKER_FAILURES = 1
    llm_settings.LLM_BREAKER_RESET_SECONDS = 0.3
    llm_settings.LLM_RETRY_ATTEMPTS = 1
    openai_server.reply(Reply.error(500))
    with pytest.raises(LLMError):
        _ask()
    with pytest.raises(LLMUnavailable):
        _ask()

    time.sleep(0.35)
    openai_server.reply(Reply.json({"answer": "back", "score": 1}))
    assert _ask().data["answer"] == "back"


def test_it_refuses_calls_beyond_the_per_minute_budget(llm_settings, openai_server):
    llm_settings.LLM_CALLS_PER_MINUTE = 2
    openai_server.default = Reply.json({"answer": "a", "score": 1})
    _ask()
    _ask()
    with pytest.raises(LLMUnavailable) as info:
        _ask()
    assert info.value.reason == "rate_limited" and info.value.retry_after > 50
    assert len(openai_server.requests) == 2


def test_it_takes_a_budget_slot_for_every_re_ask_after_invalid_json(llm_settings, openai_server):
    llm_settings.LLM_CALLS_PER_MINUTE = 3
    openai_server.reply(Reply.text("{bad"), Reply.json({"answer": "ok", "score": 1}))
    assert _ask().data["answer"] == "ok"
    openai_server.default = Reply.json({"answer": "again", "score": 1})
    assert _ask().data["answer"] == "again"
    with pytest.raises(LLMUnavailable) as info:
        _ask()
    assert info.value.reason == "rate_limited"
    assert len(openai_server.requests) == 3, "two requests for the first call, one for the second"
    assert LLMRateSlot.objects.filter(used_at__gt=timezone.now() - timedelta(minutes=1)).count() == 3


def test_it_stops_retrying_when_the_budget_has_no_slot_for_the_next_attempt(llm_settings, openai_server):
    llm_settings.LLM_CALLS_PER_MINUTE = 2
    openai_server.reply(Reply.error(500), Reply.error(503), Reply.json({"answer": "third", "score": 1}))
    with pytest.raises(LLMUnavailable) as info:
        _ask()
    assert info.value.reason == "rate_limited" and info.value.retry_after > 50
    assert len(openai_server.requests) == 2, "the third attempt would exceed 2 requests per minute"
    call = LLMCall.objects.get()
    assert (call.outcome, call.attempts) == (LLMOutcome.RATE_LIMITED, 2)
    assert "HTTP" not in call.error and "InternalServerError" in call.error


def test_it_doubles_the_backoff_up_to_the_cap():
    assert [backoff_delay(n, base=1.0, cap=60.0) for n in (1, 2, 3, 7, 8)] == [1.0, 2.0, 4.0, 60.0, 60.0]


def test_it_reports_calls_and_the_breaker_state_to_prometheus(llm_settings, openai_server):
    from prometheus_client import REGISTRY

    def sample(metric, **labels):
        return REGISTRY.get_sample_value(metric, labels) or 0.0

    llm_settings.LLM_BREAKER_FAILURES = 1
    llm_settings.LLM_RETRY_ATTEMPTS = 1
    ok, errors, rejected = (sample("caseloop_llm_calls_total", outcome=o) for o in ("ok", "error", "rejected"))
    tokens = sample("caseloop_llm_tokens_total", direction="in")
    openai_server.reply(Reply.json({"answer": "a", "score": 1}, prompt_tokens=7), Reply.error(500))
    _ask()
    with pytest.raises(LLMError):
        _ask()
    with pytest.raises(LLMUnavailable):
        _ask()
    assert sample("caseloop_llm_calls_total", outcome="ok") == ok + 1
    assert sample("caseloop_llm_calls_total", outcome="error") == errors + 1
    assert sample("caseloop_llm_calls_total", outcome="rejected") == rejected + 1
    assert sample("caseloop_llm_tokens_total", direction="in") == tokens + 7
    assert sample("caseloop_breaker_state", name="llm") == 2  # open
