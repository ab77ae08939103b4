"""JSON completions from any OpenAI-compatible endpoint, with retries, a breaker and a shared limit.

The official `openai` SDK does the HTTP; its own retries are off so that ours (exponential
backoff, a schema check of the answer) are the only ones and every attempt is accounted for.
A call is written once as steps (`reflection.llm.steps`): `complete_json` runs them in the
calling thread on `openai.OpenAI`; `run_async(client.json_steps(...))` awaits them on the event
loop on the loop's shared `openai.AsyncOpenAI`.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import jsonschema
import openai
from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from core.redaction import redact
from reflection import metrics
from reflection.llm import budgets, ratelimit
from reflection.llm.breaker import BreakerOpen, CircuitBreaker
from reflection.llm.errors import LLMError, LLMUnavailable
from reflection.llm.models import LLMCall, LLMOutcome
from reflection.llm.steps import Blocking, Pause, Send, Steps, run_sync

logger = logging.getLogger(__name__)

# Answers that are worth another try after a pause: the provider is busy or briefly down.
_TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)


# Prometheus counts outcomes coarser than the LLMCall table.
_METRIC_OUTCOME = {
    LLMOutcome.OK: "ok",
    LLMOutcome.INVALID_OUTPUT: "error",
    LLMOutcome.ERROR: "error",
    LLMOutcome.BREAKER_OPEN: "rejected",
    LLMOutcome.RATE_LIMITED: "rejected",
}


@dataclass(frozen=True)
class LLMResult:
    data: dict[str, Any]
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass
class _Attempts:
    count: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: list[str] = field(default_factory=list)
    tokens_charged: int = 0  # estimated tokens taken from a purpose budget, settled in _record


# An attempt with less time than this left before the caller's deadline is not started.
MIN_ATTEMPT_SECONDS = 0.5


@dataclass
class _Call:
    """One `complete_json` call in progress: what its attempts and its failure handling share."""

    purpose: str
    schema: dict[str, Any]
    conversation: list[ChatCompletionMessageParam]
    started: float  # time.monotonic()
    request_timeout: float  # bounds each HTTP request
    total_timeout: float | None  # bounds the whole call
    attempts: _Attempts = field(default_factory=_Attempts)
    last_invalid: bool = False  # the last attempt got an answer that failed the schema
    out_of_time: bool = False  # no further request or pause fits before the deadline

    @property
    def deadline(self) -> float | None:
        return None if self.total_timeout is None else self.started + self.total_timeout


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def _validator_for(schema: dict[str, Any]) -> Any:
    """The checked validator of `schema`, made once: checking a schema costs more than the
    answer's validation, and each caller asks with the same few schemas hundreds of times."""
    return _validator(json.dumps(schema, sort_keys=True))


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): base, 2·base, 4·base … ≤ cap."""
    return min(cap, base * (2 ** (attempt - 1)))


class LLMClient:
    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        calls_per_minute: int = 5,
        breaker: CircuitBreaker | None = None,
        price_input_per_1k: float = 0.0,
        price_output_per_1k: float = 0.0,
    ) -> None:
        self.model = model
        self.timeout = timeout
        self.attempts = max(attempts, 1)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.calls_per_minute = calls_per_minute
        self.breaker = breaker or CircuitBreaker("llm", failures=5, reset_seconds=60)
        self.price_input_per_1k = price_input_per_1k
        self.price_output_per_1k = price_output_per_1k
        # What the loop's `AsyncOpenAI` of this endpoint is made with (`loop_clients.async_sdk`).
        self.sdk_options: dict[str, Any] = {"api_key": api_key, "base_url": base_url or None, "timeout": timeout}
        self.sdk = openai.OpenAI(api_key=api_key, base_url=base_url or None, max_retries=0, timeout=timeout)

    # -- public -------------------------------------------------------------------------

    def complete_json(
        self,
        *,
        purpose: str,
        messages: list[ChatCompletionMessageParam],
        schema: dict[str, Any],
        timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> LLMResult:
        """Ask for one JSON object that validates against `schema`.

        `timeout` bounds each HTTP request (default: the client's); `total_timeout` bounds the
        whole call, attempts and pauses included: no request starts, and no pause is taken, that
        would end past it. Every request sent (first try, retry, re-ask after invalid output)
        takes one slot of the shared per-minute budget.

        Raises `LLMUnavailable` when no (further) request may be sent (breaker open, rate limit
        used up) and `LLMError` when the calls failed (provider errors or invalid output after
        all attempts, or the deadline reached).
        """
        return run_sync(self.json_steps(purpose=purpose, messages=messages, schema=schema, timeout=timeout,
                                        total_timeout=total_timeout))

    def json_steps(self, *, purpose: str, messages: list[ChatCompletionMessageParam], schema: dict[str, Any],
                   timeout: float | None = None, total_timeout: float | None = None) -> Steps[LLMResult]:
        """The steps of `complete_json`: `run_async(client.json_steps(...), offload)` awaits the
        call on the running loop (`openai.AsyncOpenAI`, its bookkeeping through `offload`);
        larger steps compose it with `yield from`."""
        if not messages:
            raise ValueError("messages must not be empty")
        _validator_for(schema)  # a bad schema is the caller's bug: SchemaError before any request
        started = time.monotonic()
        yield Blocking(partial(self.breaker_check, purpose, started))
        call = _Call(
            purpose=purpose,
            schema=schema,
            conversation=[self._schema_message(schema), *messages],
            started=started,
            request_timeout=timeout if timeout is not None else self.timeout,
            total_timeout=total_timeout,
        )
        while call.attempts.count < self.attempts and not call.out_of_time:
            result = yield from self._attempt(call)
            if result is not None:
                return result
        error = yield Blocking(partial(self._failure, call))
        raise error

    def breaker_check(self, purpose: str, started: float) -> None:
        """Raise `LLMUnavailable` (and record the refusal) while the circuit breaker is open."""
        try:
            self.breaker.before_call()
        except BreakerOpen as exc:
            self._record(purpose, LLMOutcome.BREAKER_OPEN, _Attempts(), started, str(exc))
            raise LLMUnavailable("The LLM circuit breaker is open.", reason="breaker_open", retry_after=exc.retry_after) from None

    def _attempt(self, call: _Call) -> Steps[LLMResult | None]:
        """One request and its answer: the result, or None when another attempt may follow
        (after a transient error or an invalid answer; `call.out_of_time` says if time is up)."""
        per_attempt = yield from self.claim_attempt(call.purpose, call.attempts, call.started, call.conversation,
                                                    call.deadline, call.request_timeout)
        if per_attempt is None:
            call.out_of_time = True
            return None
        try:
            response = yield Send(self, {"model": self.model, "messages": call.conversation,
                                         "response_format": {"type": "json_object"}, "timeout": per_attempt})
        except _TRANSIENT as exc:
            call.last_invalid = False
            call.out_of_time = yield from self.after_transient(call.attempts, exc, call.deadline)
            return None
        except openai.APIStatusError as exc:
            error = yield Blocking(partial(self.refused, call.purpose, call.attempts, call.started, exc))
            raise error from exc

        # getattr: an OpenAI-compatible server may leave out `usage` (and `model`), and the SDK
        # builds its answer without validation, so a missing field is a missing attribute.
        usage = getattr(response, "usage", None)
        call.attempts.tokens_in += getattr(usage, "prompt_tokens", 0) or 0
        call.attempts.tokens_out += getattr(usage, "completion_tokens", 0) or 0
        content = response.choices[0].message.content if response.choices else None
        try:
            data = self._parse(content, call.schema)
        except ValueError as exc:
            self._ask_again(call, content, exc)
            return None
        yield Blocking(partial(self.succeeded, call.purpose, call.attempts, call.started))
        return LLMResult(
            data=data,
            model=getattr(response, "model", None) or self.model,
            tokens_in=call.attempts.tokens_in,
            tokens_out=call.attempts.tokens_out,
            cost_usd=self._cost(call.attempts),
        )

    # -- failure handling: retry, backoff, breaker ----------------------------------------

    def claim_attempt(
        self, purpose: str, attempts: _Attempts, started: float, conversation: Sequence[Mapping[str, object]],
        deadline: float | None, request_timeout: float | None = None,
    ) -> Steps[float | None]:
        """Before a request: its timeout (`request_timeout`, else the client's, cut to the
        deadline), after claiming it from the budget (`LLMUnavailable` when that is spent);
        None when too little time is left before `deadline` to start it."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining < MIN_ATTEMPT_SECONDS:
            return None
        yield Blocking(partial(self._take_slot, purpose, attempts, started, conversation))
        attempts.count += 1
        limit = self.timeout if request_timeout is None else request_timeout
        return limit if remaining is None else min(limit, remaining)

    def after_transient(self, attempts: _Attempts, exc: Exception, deadline: float | None) -> Steps[bool]:
        """The provider is busy or briefly down: pause before the next attempt (backoff,
        `Retry-After`). True when time is up: that pause would end past the deadline."""
        attempts.errors.append(f"attempt {attempts.count}: {type(exc).__name__}: {exc}")
        if attempts.count >= self.attempts:
            return False
        delay = self._delay(attempts.count, exc)
        if deadline is not None and time.monotonic() + delay + MIN_ATTEMPT_SECONDS > deadline:
            return True
        yield Pause(delay)
        return False

    def refused(self, purpose: str, attempts: _Attempts, started: float, exc: openai.APIStatusError) -> LLMError:
        """400/401/403/404: another try would get the same answer, so the call ends here."""
        attempts.errors.append(f"attempt {attempts.count}: HTTP {exc.status_code}: {exc}")
        self.breaker.record_failure()
        self._record(purpose, LLMOutcome.ERROR, attempts, started, "\n".join(attempts.errors))
        return LLMError(f"The LLM refused the request (HTTP {exc.status_code}).")

    def succeeded(self, purpose: str, attempts: _Attempts, started: float) -> None:
        self.breaker.record_success()
        self._record(purpose, LLMOutcome.OK, attempts, started, "\n".join(attempts.errors))

    def answered_badly(self, purpose: str, attempts: _Attempts, started: float) -> None:
        """The endpoint answered, so it is up: bad output does not trip the breaker."""
        self.breaker.record_success()
        self._record(purpose, LLMOutcome.INVALID_OUTPUT, attempts, started, "\n".join(attempts.errors))

    def failed(self, purpose: str, attempts: _Attempts, started: float, detail: str) -> None:
        self.breaker.record_failure()
        self._record(purpose, LLMOutcome.ERROR, attempts, started, detail)

    @staticmethod
    def _ask_again(call: _Call, content: str | None, exc: ValueError) -> None:
        """Show the model its mistake; a malformed answer needs no pause."""
        call.last_invalid = True
        call.attempts.errors.append(f"attempt {call.attempts.count}: invalid output: {exc}")
        call.conversation = [
            *call.conversation,
            {"role": "assistant", "content": (content or "")[:4000]},
            {"role": "user", "content": f"That answer was rejected: {exc}. Reply with only the corrected JSON object."},
        ]

    def _failure(self, call: _Call) -> LLMError:
        """Every attempt is spent or time is up: record the call, tell the breaker what it
        says about the endpoint's health, and the error to raise."""
        attempts = call.attempts
        if call.out_of_time:
            attempts.errors.append(f"deadline of {call.total_timeout:.1f} s reached after {attempts.count} attempt(s)")
        detail = "\n".join(attempts.errors)
        if call.out_of_time and attempts.count == 0:
            # Nothing was sent: says nothing about the endpoint's health.
            self._record(call.purpose, LLMOutcome.ERROR, attempts, call.started, detail)
            return LLMError(f"No time left for an LLM call within {call.total_timeout:.1f} s.")
        if call.last_invalid:
            self.answered_badly(call.purpose, attempts, call.started)
            return LLMError(f"The LLM gave no valid JSON in {attempts.count} attempts.")
        self.failed(call.purpose, attempts, call.started, detail)
        if call.out_of_time:
            return LLMError(f"The LLM gave no answer within {call.total_timeout:.1f} s ({attempts.count} attempt(s)).")
        return LLMError(f"The LLM failed {attempts.count} times: {attempts.errors[-1] if attempts.errors else ''}")

    def seconds_until_slot(self) -> float:
        """0 when a request could be sent now, else how long until a slot of the budget frees."""
        return ratelimit.seconds_until_free(limit=self.calls_per_minute)

    def _take_slot(
        self, purpose: str, attempts: _Attempts, started: float, conversation: Sequence[Mapping[str, object]] = (),
    ) -> None:
        """Claim one request of the purpose's budget (else of the shared slots), or end the call."""
        budget = budgets.budget_for(purpose)
        if budget is not None:
            estimate = budgets.estimate_tokens(conversation)
            wait = budgets.try_acquire(budget, tokens=estimate)
            if wait == 0.0:
                attempts.tokens_charged += estimate
                return
            attempts.errors.append(f"no request free in the {budget.name} budget; retry in {wait:.1f} s")
            self._record(purpose, LLMOutcome.RATE_LIMITED, attempts, started, "\n".join(attempts.errors))
            raise LLMUnavailable(
                f"The {budget.name} LLM budget ({budget.requests_per_minute} requests, "
                f"{budget.tokens_per_minute} tokens per minute) is used up.",
                reason="rate_limited",
                retry_after=wait,
            )
        if ratelimit.try_acquire(limit=self.calls_per_minute):
            return
        wait = self.seconds_until_slot()
        attempts.errors.append(f"no request slot free; retry in {wait:.0f} s")
        self._record(purpose, LLMOutcome.RATE_LIMITED, attempts, started, "\n".join(attempts.errors))
        raise LLMUnavailable(
            f"The LLM budget of {self.calls_per_minute} requests per minute is used up"
            + (f" after {attempts.count} attempt(s)." if attempts.count else "."),
            reason="rate_limited",
            retry_after=wait,
        )

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _schema_message(schema: dict[str, Any]) -> ChatCompletionMessageParam:
        return {
            "role": "system",
            "content": "Answer with one JSON object only, valid against this JSON Schema:\n"
            + json.dumps(schema, separators=(",", ":")),
        }

    @staticmethod
    def _parse(content: str | None, schema: dict[str, Any]) -> dict[str, Any]:
        if not content:
            raise ValueError("empty answer")
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at position {exc.pos})") from None
        error = jsonschema.exceptions.best_match(_validator_for(schema).iter_errors(data))
        if error is not None:  # the error `jsonschema.validate` would raise
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise ValueError(f"schema violation at {where}: {error.message}")
        if not isinstance(data, dict):
            raise ValueError("the answer must be a JSON object")
        return data

    def _delay(self, attempt: int, exc: Exception) -> float:
        delay = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), self.backoff_cap))
            except ValueError:
                pass
        return delay

    def _cost(self, attempts: _Attempts) -> float:
        return round(
            attempts.tokens_in / 1000 * self.price_input_per_1k
            + attempts.tokens_out / 1000 * self.price_output_per_1k,
            8,
        )

    def _record(self, purpose: str, outcome: LLMOutcome, attempts: _Attempts, started: float, error: str) -> None:
        if attempts.tokens_charged:
            budget = budgets.budget_for(purpose)
            if budget is not None:
                budgets.settle(budget, charged=attempts.tokens_charged, used=attempts.tokens_in + attempts.tokens_out)
            attempts.tokens_charged = 0
        call = LLMCall(
            purpose=purpose[:100],
            model=self.model[:100],
            outcome=outcome,
            attempts=attempts.count,
            tokens_in=attempts.tokens_in,
            tokens_out=attempts.tokens_out,
            cost_usd=self._cost(attempts),
            latency_ms=int((time.monotonic() - started) * 1000),
            # Providers echo keys back in errors; admin shows this text, so it is masked like logs.
            error=redact(error)[:5000],
        )
        call.full_clean()
        call.save()
        metrics.record_llm_call(
            outcome=_METRIC_OUTCOME[outcome],
            tokens_in=attempts.tokens_in,
            tokens_out=attempts.tokens_out,
            cost_usd=call.cost_usd,
            seconds=call.latency_ms / 1000,
        )
        if outcome != LLMOutcome.OK:
            logger.warning("LLM call for %s: %s %s", purpose, outcome, error[:500])


def llm_configured() -> bool:
    return bool(settings.OPENAI_API_KEY and settings.LLM_MODEL)


@lru_cache(maxsize=4)
def _client_for(config: tuple[Any, ...]) -> LLMClient:
    (api_key, base_url, model, timeout, attempts, base, cap, per_minute, failures, reset, p_in, p_out) = config
    return LLMClient(
        api_key=api_key,
        base_url=base_url,
        model=model,
        timeout=timeout,
        attempts=attempts,
        backoff_base=base,
        backoff_cap=cap,
        calls_per_minute=per_minute,
        breaker=CircuitBreaker("llm", failures=failures, reset_seconds=reset),
        price_input_per_1k=p_in,
        price_output_per_1k=p_out,
    )


def get_llm_client(*, model: str = "") -> LLMClient | None:
    """The configured client, or None when `OPENAI_API_KEY` and `LLM_MODEL` are not set.
    `model` asks another model of the same endpoint (e.g. `VISION_MODEL`)."""
    if not llm_configured():
        return None
    return _client_for(
        (
            settings.OPENAI_API_KEY,
            settings.OPENAI_BASE_URL,
            model or settings.LLM_MODEL,
            settings.LLM_TIMEOUT_SECONDS,
            settings.LLM_RETRY_ATTEMPTS,
            settings.LLM_RETRY_BASE_SECONDS,
            settings.LLM_RETRY_CAP_SECONDS,
            settings.LLM_CALLS_PER_MINUTE,
            settings.LLM_BREAKER_FAILURES,
            settings.LLM_BREAKER_RESET_SECONDS,
            settings.LLM_PRICE_INPUT_PER_1K,
            settings.LLM_PRICE_OUTPUT_PER_1K,
        )
    )


def llm_breaker_state() -> str:
    """`closed`, `open` or `half_open`, for /health and /metrics."""
    return CircuitBreaker(
        "llm", failures=settings.LLM_BREAKER_FAILURES, reset_seconds=settings.LLM_BREAKER_RESET_SECONDS
    ).state()
