"""With `REDIS_URL` set the per-purpose LLM budget is a token bucket in Redis (one atomic script
per claim), against a real redis-server: it grants a minute's requests and tokens, then says how
long to wait, refills with time, settles against the provider's count, and falls back to the
database row when Redis is down."""
from __future__ import annotations

import threading

import pytest

from reflection.llm import budgets

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def on_redis(settings, redis_server):
    settings.REDIS_URL = redis_server.url
    return redis_server


def test_it_grants_a_minutes_requests_then_says_how_long_to_wait(on_redis):
    budget = budgets.Budget(name="redis-requests", requests_per_minute=6, tokens_per_minute=0)
    assert [budgets.try_acquire(budget, tokens=100) for _ in range(6)] == [0.0] * 6
    wait = budgets.try_acquire(budget, tokens=100)
    assert 9.0 < wait <= 10.0  # one request refills every 10 s
    assert not budgets.LLMBudgetState.objects.filter(name="redis-requests").exists()  # not on the database


def test_it_limits_tokens_and_settles_against_the_providers_count(on_redis):
    budget = budgets.Budget(name="redis-tokens", requests_per_minute=1000, tokens_per_minute=600)
    assert budgets.try_acquire(budget, tokens=500) == 0.0
    wait = budgets.try_acquire(budget, tokens=500)
    assert 39.0 < wait <= 40.0  # 400 tokens missing at 10 a second
    budgets.settle(budget, charged=500, used=100)  # the answer used 100: 400 come back
    assert budgets.try_acquire(budget, tokens=500) == 0.0


def test_it_never_grants_more_than_the_limit_to_racing_claims(on_redis):
    budget = budgets.Budget(name="redis-race", requests_per_minute=50, tokens_per_minute=0)
    granted: list[float] = []
    lock = threading.Lock()

    def claim() -> None:
        for _ in range(10):
            wait = budgets.try_acquire(budget, tokens=1)
            with lock:
                granted.append(wait)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(0.0) in (50, 51)  # 50, and at most one refilled during the race


def test_it_falls_back_to_the_database_when_redis_is_down(on_redis):
    on_redis.stop()
    budget = budgets.Budget(name="redis-down", requests_per_minute=2, tokens_per_minute=0)
    assert [budgets.try_acquire(budget, tokens=1) for _ in range(2)] == [0.0, 0.0]
    assert budgets.try_acquire(budget, tokens=1) > 0
    assert budgets.LLMBudgetState.objects.filter(name="redis-down").exists()
