"""The supervisor's LLM calls are `openai.AsyncOpenAI` calls awaited on the event loop: many at
once with one thread for their bookkeeping, one client (and connection pool) per loop, a wait
for the budget that sleeps on the loop, and the circuit breaker still obeyed."""
from __future__ import annotations

import asyncio
import time

import pytest

from agents.models import Session
from agents.runtime import llm
from agents.runtime.pools import BlockingPool
from reflection.llm import budgets, loop_clients
from reflection.llm.breaker import CircuitBreaker
from reflection.llm.steps import run_async
from reflection.models import LLMCall
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {"type": "object", "required": ["scores"], "properties": {"scores": {"type": "object"}}}
MESSAGES = [{"role": "user", "content": "Rate it."}]


class Waits:
    """A `BudgetListener` that notes when it was told to wait."""

    def __init__(self) -> None:
        self.told: list[tuple[str, float, float]] = []

    def waiting(self, purpose: str, seconds: float) -> None:
        self.told.append((purpose, seconds, time.monotonic()))

    def exhausted(self, purpose: str, message: str) -> None:
        pass


async def _judge_calls(n: int, pool: BlockingPool, listener: Waits | None = None) -> list[llm.LLMResult]:
    loop_clients.set_connections(n)
    try:
        return await asyncio.gather(*(
            run_async(llm.json_steps(name="judge", messages=MESSAGES, schema=SCHEMA, listener=listener), pool)
            for _ in range(n)
        ))
    finally:
        await loop_clients.close()


def test_twenty_calls_wait_on_the_llm_at_once_with_one_thread(llm_settings, openai_server):
    # No answer until all 20 are waiting for one. Made in threads, one thread would hold one
    # call at a time and the 20 would never wait together.
    openai_server.default = Reply.json({"scores": {"a": 0.9}})
    openai_server.hold(20, timeout=20)
    pool = BlockingPool(1, name="test-bookkeeping")
    try:
        results = asyncio.run(_judge_calls(20, pool))
    finally:
        pool.close()
    assert [r.data for r in results] == [{"scores": {"a": 0.9}}] * 20
    assert openai_server.most_in_flight == 20
    assert all(agent.startswith("AsyncOpenAI/Python") for agent in openai_server.user_agents)
    assert LLMCall.objects.filter(purpose="supervisor.judge", outcome="ok").count() == 20


async def _client_of_this_loop() -> tuple[int, bool]:
    loop_clients.set_connections(7)
    first = loop_clients.async_sdk(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=5)
    again = loop_clients.async_sdk(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=5)
    limit = loop_clients.connections()
    await loop_clients.close()
    return limit, first is again


def test_each_loop_has_one_client_with_the_pool_it_was_sized_to():
    assert asyncio.run(_client_of_this_loop()) == (7, True)


async def _wait_beside_a_ticker(pool: BlockingPool, listener: Waits) -> tuple[llm.LLMResult, list[float]]:
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    ticking = asyncio.create_task(ticker())
    try:
        (result,) = await _judge_calls(1, pool, listener)
    finally:
        ticking.cancel()
    return result, ticks


def test_a_wait_for_the_budget_sleeps_on_the_loop_then_proceeds(llm_settings, openai_server, settings):
    settings.AGENTS_LLM_REQUESTS_PER_MINUTE = 600  # 10 a second refill
    settings.AGENTS_LLM_BUDGET_WAIT_S = 20.0
    budgets.ensure("supervisor")
    # 10 requests of debt: about a second before the next is granted.
    budgets.LLMBudgetState.objects.filter(name="supervisor").update(requests=-10, tokens=0.0, updated_at=time.time())
    openai_server.default = Reply.json({"scores": {"a": 0.5}})
    listener = Waits()
    pool = BlockingPool(1, name="test-bookkeeping")
    try:
        result, ticks = asyncio.run(_wait_beside_a_ticker(pool, listener))
    finally:
        pool.close()
    assert result.data == {"scores": {"a": 0.5}}
    ((purpose, seconds, told_at),) = listener.told
    assert purpose == "supervisor.judge" and seconds > 0
    # The loop went on while the call waited: other coroutines ran after it was told to wait.
    assert sum(1 for tick in ticks if tick > told_at) >= 2
    assert len(openai_server.requests) == 1


def test_an_open_breaker_sends_nothing_and_the_session_says_why(api, llm_settings, openai_server, knowledge, settings):
    openai_server.default = Reply.json({"steps": [{"agent": "information_retrieval", "action": "find"}]})
    breaker = CircuitBreaker("llm", failures=settings.LLM_BREAKER_FAILURES, reset_seconds=settings.LLM_BREAKER_RESET_SECONDS)
    for _ in range(settings.LLM_BREAKER_FAILURES):
        breaker.record_failure()
    posted = api.post("/api/sessions/", {"query": "What is our refund policy for enterprise customers?"}, format="json")
    session = Session.objects.get(pk=posted.json()["session_id"])
    assert openai_server.requests == []
    assert session.plan_source == "heuristic"
    assert session.errors["answer"]["type"] == "AnswerFallback"
    assert "circuit breaker is open" in session.errors["answer"]["message"]
    assert "refund" in session.answer.lower() and "[1]" in session.answer
    outcomes = set(LLMCall.objects.values_list("purpose", "outcome"))
    assert ("supervisor.plan", "breaker_open") in outcomes and ("supervisor.answer", "breaker_open") in outcomes
