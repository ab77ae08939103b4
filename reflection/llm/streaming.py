"""Streamed text completions (`stream=True`): the answer arrives token by token.

The same resilience as `LLMClient.complete_json`: the purpose's budget is claimed for every
request, the circuit breaker is asked first and told the outcome, and the call is accounted as
one `LLMCall` row. A transient error before the first token is retried with backoff; once text
has been handed to the caller a failure ends the call (the caller already showed that text).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import openai

from reflection.llm.breaker import BreakerOpen
from reflection.llm.client import _TRANSIENT, MIN_ATTEMPT_SECONDS, LLMClient, LLMResult, _Attempts
from reflection.llm.errors import LLMError, LLMUnavailable
from reflection.llm.models import LLMOutcome


def stream_text(
    client: LLMClient,
    *,
    purpose: str,
    messages: list[dict],
    on_delta: Callable[[str], None],
    total_timeout: float | None = None,
) -> LLMResult:
    """Stream one text answer; `on_delta(text)` gets each piece as it arrives.

    Returns an `LLMResult` whose `data` is `{"text": <the whole answer>}`. Raises
    `LLMUnavailable` (breaker open, budget spent) before anything is sent, `LLMError` when the
    provider failed."""
    if not messages:
        raise ValueError("messages must not be empty")
    started = time.monotonic()
    deadline = None if total_timeout is None else started + total_timeout
    try:
        client.breaker.before_call()
    except BreakerOpen as exc:
        client._record(purpose, LLMOutcome.BREAKER_OPEN, _Attempts(), started, str(exc))
        raise LLMUnavailable("The LLM circuit breaker is open.", reason="breaker_open", retry_after=exc.retry_after) from None
    attempts = _Attempts()
    while attempts.count < client.attempts:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining < MIN_ATTEMPT_SECONDS:
            break
        client._take_slot(purpose, attempts, started, messages)
        attempts.count += 1
        per_attempt = client.timeout if remaining is None else min(client.timeout, remaining)
        parts: list[str] = []
        model = client.model
        try:
            stream = client._sdk.chat.completions.create(  # type: ignore[call-overload]  # plain dict messages
                model=client.model, messages=messages, stream=True, stream_options={"include_usage": True},
                timeout=per_attempt,
            )
            for chunk in stream:
                model = getattr(chunk, "model", None) or model
                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    attempts.tokens_in += getattr(usage, "prompt_tokens", 0) or 0
                    attempts.tokens_out += getattr(usage, "completion_tokens", 0) or 0
                for choice in chunk.choices or []:
                    piece = getattr(choice.delta, "content", None)
                    if piece:
                        parts.append(piece)
                        on_delta(piece)
        except _TRANSIENT as exc:
            attempts.errors.append(f"attempt {attempts.count}: {type(exc).__name__}: {exc}")
            if parts or attempts.count >= client.attempts:
                break
            delay = client._delay(attempts.count, exc)
            if deadline is not None and time.monotonic() + delay + MIN_ATTEMPT_SECONDS > deadline:
                break
            time.sleep(delay)
            continue
        except openai.APIStatusError as exc:
            attempts.errors.append(f"attempt {attempts.count}: HTTP {exc.status_code}: {exc}")
            client.breaker.record_failure()
            client._record(purpose, LLMOutcome.ERROR, attempts, started, "\n".join(attempts.errors))
            raise LLMError(f"The LLM refused the request (HTTP {exc.status_code}).") from exc
        text = "".join(parts)
        if not text.strip():
            attempts.errors.append(f"attempt {attempts.count}: empty answer")
            client.breaker.record_success()
            client._record(purpose, LLMOutcome.INVALID_OUTPUT, attempts, started, "\n".join(attempts.errors))
            raise LLMError("The LLM streamed an empty answer.")
        client.breaker.record_success()
        client._record(purpose, LLMOutcome.OK, attempts, started, "\n".join(attempts.errors))
        return LLMResult(data={"text": text}, model=model, tokens_in=attempts.tokens_in,
                         tokens_out=attempts.tokens_out, cost_usd=client._cost(attempts))
    detail = "\n".join(attempts.errors) or "no time left"
    client.breaker.record_failure()
    client._record(purpose, LLMOutcome.ERROR, attempts, started, detail)
    raise LLMError(f"The LLM stream failed after {attempts.count} attempt(s): {attempts.errors[-1] if attempts.errors else detail}")
