"""Streamed text completions (`stream=True`): the answer arrives token by token.

The same resilience as `LLMClient.complete_json`: the purpose's budget is claimed for every
request, the circuit breaker is asked first and told the outcome, and the call is accounted as
one `LLMCall` row. A transient error before the first token is retried with backoff; once text
has been handed to the caller a failure ends the call (the caller already showed that text).
Written as steps (`reflection.llm.steps`): `stream_text` runs them in this thread,
`run_async(stream_steps(...))` on the event loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import openai

from reflection.llm.client import _TRANSIENT, LLMClient, LLMResult, _Attempts
from reflection.llm.errors import LLMError
from reflection.llm.steps import Blocking, NextChunk, Send, Steps, run_sync


class Deltas(Protocol):
    """Where the pieces go. `add` must not block (it runs on the event loop under
    `astream_text`) and says when the pieces held should be flushed; `flush` may block (it
    runs as a `Blocking` step: a database write)."""

    def add(self, piece: str) -> bool: ...

    def flush(self) -> None: ...


class Collected:
    """`Deltas` that only keeps the pieces (no flushing)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def add(self, piece: str) -> bool:
        self.pieces.append(piece)
        return False

    def flush(self) -> None:
        pass


@dataclass
class _Read:
    """What one streamed attempt has brought so far."""

    model: str
    parts: list[str] = field(default_factory=list)

    def absorb(self, chunk: Any, attempts: _Attempts) -> list[str]:
        """Take one chunk's model and usage; its text pieces, in order."""
        self.model = getattr(chunk, "model", None) or self.model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            attempts.tokens_in += getattr(usage, "prompt_tokens", 0) or 0
            attempts.tokens_out += getattr(usage, "completion_tokens", 0) or 0
        pieces = [piece for choice in chunk.choices or [] if (piece := getattr(choice.delta, "content", None))]
        self.parts.extend(pieces)
        return pieces


def stream_text(client: LLMClient, *, purpose: str, messages: list[dict], deltas: Deltas,
                total_timeout: float | None = None) -> LLMResult:
    """Stream one text answer; `deltas` gets each piece as it arrives.

    Returns an `LLMResult` whose `data` is `{"text": <the whole answer>}`. Raises
    `LLMUnavailable` (breaker open, budget spent) before anything is sent, `LLMError` when the
    provider failed."""
    return run_sync(stream_steps(client, purpose=purpose, messages=messages, deltas=deltas, total_timeout=total_timeout))


def stream_steps(client: LLMClient, *, purpose: str, messages: list[dict], deltas: Deltas,
                 total_timeout: float | None = None) -> Steps[LLMResult]:
    """The steps of `stream_text`, for callers that compose them (`yield from`)."""
    if not messages:
        raise ValueError("messages must not be empty")
    started = time.monotonic()
    deadline = None if total_timeout is None else started + total_timeout
    yield Blocking(partial(client.breaker_check, purpose, started))
    attempts = _Attempts()
    while attempts.count < client.attempts:
        per_attempt = yield from client.claim_attempt(purpose, attempts, started, messages, deadline)
        if per_attempt is None:
            break
        read = _Read(model=client.model)
        try:
            stream = yield Send(client, {"model": client.model, "messages": messages, "stream": True,
                                         "stream_options": {"include_usage": True}, "timeout": per_attempt})
            while (chunk := (yield NextChunk(stream))) is not None:
                for piece in read.absorb(chunk, attempts):
                    if deltas.add(piece):
                        yield Blocking(deltas.flush)
        except _TRANSIENT as exc:
            if read.parts:  # text already shown: a retry would show it twice
                attempts.errors.append(f"attempt {attempts.count}: {type(exc).__name__}: {exc}")
                break
            out_of_time = yield from client.after_transient(attempts, exc, deadline)
            if out_of_time or attempts.count >= client.attempts:
                break
            continue
        except openai.APIStatusError as exc:
            error = yield Blocking(partial(client.refused, purpose, attempts, started, exc))
            raise error from exc
        text = "".join(read.parts)
        if not text.strip():
            attempts.errors.append(f"attempt {attempts.count}: empty answer")
            yield Blocking(partial(client.answered_badly, purpose, attempts, started))
            raise LLMError("The LLM streamed an empty answer.")
        yield Blocking(partial(client.succeeded, purpose, attempts, started))
        return LLMResult(data={"text": text}, model=read.model, tokens_in=attempts.tokens_in,
                         tokens_out=attempts.tokens_out, cost_usd=client._cost(attempts))
    detail = "\n".join(attempts.errors) or "no time left"
    yield Blocking(partial(client.failed, purpose, attempts, started, detail))
    raise LLMError(f"The LLM stream failed after {attempts.count} attempt(s): {attempts.errors[-1] if attempts.errors else detail}")
