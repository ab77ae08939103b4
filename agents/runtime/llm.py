"""The supervisor's one door to the LLM: reflection's client, or None when none is configured.

Every supervisor call is made with a purpose under "supervisor." and so is metered by the
supervisor's own budget (`AGENTS_LLM_REQUESTS_PER_MINUTE` / `AGENTS_LLM_TOKENS_PER_MINUTE`),
never by the suggestions' 5 per minute. When that budget is spent, a call waits for it (up to
`AGENTS_LLM_BUDGET_WAIT_S` and the session's deadline) and tells the session through its
`BudgetListener`, instead of failing at once.

Calls are steps (`reflection.llm.steps`): a session awaits them on its runner's event loop
(`run_async`, through the loop's shared `AsyncOpenAI`); the REST agents run them in their
thread (`run_sync`, on `openai.OpenAI`). The wait for the budget is a `Pause` step: `asyncio.sleep` on the loop.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from reflection.llm import LLMClient, LLMError, LLMResult, LLMUnavailable, budgets, get_llm_client
from reflection.llm.steps import Blocking, Pause, Steps
from reflection.llm.streaming import Deltas, stream_steps

__all__ = [
    "BUDGET", "BudgetExhausted", "BudgetListener", "LLMClient", "LLMError", "LLMResult", "LLMUnavailable",
    "budget_wait_limit", "budgeted", "get_llm_client", "json_steps", "llm_client", "purpose",
    "register_budget", "stream_answer_steps",
]

BUDGET = "supervisor"


class BudgetListener(Protocol):
    """What a session hears about its budget (it records a `budget_wait` event and `errors`).
    `waiting` may block (a database write: it runs as a `Blocking` step), `exhausted` must not."""

    def waiting(self, purpose: str, seconds: float) -> None: ...

    def exhausted(self, purpose: str, message: str) -> None: ...


class BudgetExhausted(LLMUnavailable):
    """The supervisor's budget stayed spent for as long as a session may wait."""


def llm_client() -> LLMClient | None:
    return get_llm_client()


def purpose(name: str) -> str:
    return f"{BUDGET}.{name}"


def register_budget() -> None:
    budgets.register(BUDGET, lambda: (int(settings.AGENTS_LLM_REQUESTS_PER_MINUTE),
                                      int(settings.AGENTS_LLM_TOKENS_PER_MINUTE)))


def budget_wait_limit(deadline: float | None = None) -> float:
    limit = float(settings.AGENTS_LLM_BUDGET_WAIT_S)
    if deadline is not None:
        limit = min(limit, deadline - time.monotonic())
    return max(limit, 0.0)


def budgeted(call: Callable[[float | None], Steps[LLMResult]], *, name: str, total_timeout: float | None = None,
             deadline: float | None = None, listener: BudgetListener | None = None) -> Steps[LLMResult]:
    """The steps of `call(total_timeout)`; while it is refused for the budget, wait and try again.

    The wait is bounded by `AGENTS_LLM_BUDGET_WAIT_S` and `deadline` (`time.monotonic()`); the
    call's own `total_timeout` starts again after a wait, so waiting never eats the answer's time
    (the deadline still bounds both). Raises `BudgetExhausted` when the budget stayed spent.
    """
    give_up_at = time.monotonic() + budget_wait_limit(deadline)
    told = False
    while True:
        timeout = total_timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            timeout = left if timeout is None else min(timeout, left)
        try:
            return (yield from call(timeout))
        except LLMUnavailable as refused:
            if refused.reason != "rate_limited":
                raise
            left = give_up_at - time.monotonic()
            retry_after = refused.retry_after if refused.retry_after is not None else 1.0
            if left <= 0:
                message = f"No {BUDGET} LLM budget free for {name} within {budget_wait_limit():.1f} s: {refused}"
                if listener is not None:
                    listener.exhausted(name, message)
                raise BudgetExhausted(message, reason="rate_limited", retry_after=retry_after) from refused
            if listener is not None and not told:
                yield Blocking(partial(listener.waiting, name, round(retry_after, 3)))
                told = True
            # Jitter: sessions that wait for the same refill must not all retry at the same instant.
            yield Pause(min(retry_after * random.uniform(1.0, 1.2), left) + 0.005)


def json_steps(*, name: str, messages: list[ChatCompletionMessageParam], schema: dict,
               total_timeout: float | None = None, deadline: float | None = None,
               listener: BudgetListener | None = None, model: str = "") -> Steps[LLMResult]:
    """`LLMClient.json_steps` under purpose "supervisor.<name>", waiting for its budget;
    `model` asks another model of the endpoint than LLM_MODEL (the vision agent's)."""
    client = get_llm_client(model=model) if model else llm_client()
    if client is None:
        raise LLMUnavailable("No LLM is configured.", reason="not_configured")
    full = purpose(name)
    return (yield from budgeted(
        lambda timeout: client.json_steps(purpose=full, messages=messages, schema=schema, total_timeout=timeout),
        name=full, total_timeout=total_timeout, deadline=deadline, listener=listener,
    ))


def stream_answer_steps(client: LLMClient, *, name: str, messages: list[dict], deltas: Deltas,
                        total_timeout: float | None = None, deadline: float | None = None,
                        listener: BudgetListener | None = None) -> Steps[LLMResult]:
    """A streamed text answer under purpose "supervisor.<name>", waiting for its budget."""
    full = purpose(name)
    return (yield from budgeted(
        lambda timeout: stream_steps(client, purpose=full, messages=messages, deltas=deltas, total_timeout=timeout),
        name=full, total_timeout=total_timeout, deadline=deadline, listener=listener,
    ))
