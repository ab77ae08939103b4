"""Per-purpose LLM budgets: requests and tokens per minute, shared by every process.

Reflection's suggestions keep the one shared limit of `LLM_CALLS_PER_MINUTE` (slots, see
`ratelimit`). A caller with other needs registers a budget for its purpose prefix: the
supervisor registers "supervisor" (its purposes are "supervisor.plan", "supervisor.judge" ...)
with the provider's real limits, so suggestions and sessions never starve each other.

A budget is a token bucket per resource (requests, tokens) holding at most one minute's worth
and refilled continuously, which is how providers meter RPM and TPM. Its state is one row
(`LLMBudgetState`); a claim is a single conditional UPDATE that refills, checks and subtracts
in one statement, so the database serialises concurrent claims (PostgreSQL re-checks the WHERE
on the locked row, SQLite has one writer) and no two processes spend the same request. Tokens
are charged on an estimate before the request (prompt size + an allowance for the answer) and
settled against the provider's count afterwards.

With `REDIS_URL` set, the bucket lives in Redis instead (one Lua script per claim, atomic on
the server): a session runner's hundreds of claims a second no longer queue on one row's lock.
If Redis does not answer, the claim falls back to the row (the two buckets are then apart for
a minute at most: each refills to the limit within it).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connections, router
from django.db.models import F, FloatField, Value
from django.db.models.functions import Least

from core.redis_client import redis_for
from reflection.llm.errors import LLMUnavailable
from reflection.llm.models import LLMBudgetState

__all__ = ["Budget", "LLMBudgetState", "LLMUnavailable", "budget_for", "ensure", "register", "settle",
           "estimate_tokens", "try_acquire"]

logger = logging.getLogger(__name__)

# Tokens assumed for an answer before the provider reports the real count.
COMPLETION_ALLOWANCE = 256
# What one image costs at most in OpenAI's count: a high-detail 1024x1024 image is 765 tokens,
# 2048x2048 1,105 (85 base + 170 per 512-pixel tile).
IMAGE_TOKENS = 1105


@dataclass(frozen=True)
class Budget:
    name: str
    requests_per_minute: int
    tokens_per_minute: int  # 0: no token limit


# Purpose prefix -> a function returning (requests per minute, tokens per minute), read at each
# call so that settings changes apply at once.
_REGISTRY: dict[str, Callable[[], tuple[int, int]]] = {}


def register(prefix: str, limits: Callable[[], tuple[int, int]]) -> None:
    """Give purposes `prefix` and `prefix.*` their own budget (called from an AppConfig.ready)."""
    _REGISTRY[prefix] = limits


def budget_for(purpose: str) -> Budget | None:
    """The budget of `purpose`, or None for the shared per-minute slots."""
    prefix = purpose.split(".", 1)[0]
    limits = _REGISTRY.get(prefix)
    if limits is None:
        return None
    requests, tokens = limits()
    return Budget(name=prefix, requests_per_minute=int(requests), tokens_per_minute=int(tokens))


def estimate_tokens(messages: Sequence[Mapping[str, object]]) -> int:
    """About four characters a token (OpenAI's rule of thumb) plus an allowance for the answer.
    An image part counts `IMAGE_TOKENS`, not its base64 text (a 1 MB image is not 350,000 tokens)."""
    images = 0
    texts: list[object] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = [part for part in content if isinstance(part, Mapping)]
            images += sum(1 for part in parts if part.get("type") == "image_url")
            texts.append({**message, "content": [part for part in parts if part.get("type") != "image_url"]})
        else:
            texts.append(message)
    return len(json.dumps(texts, ensure_ascii=False)) // 4 + images * IMAGE_TOKENS + COMPLETION_ALLOWANCE


def ensure(name: str, *, requests: float = 1e12, tokens: float = 1e12) -> None:
    """Create the budget's row, full (levels are capped at the limits when next refilled)."""
    LLMBudgetState.objects.bulk_create(
        [LLMBudgetState(name=name, requests=requests, tokens=tokens, updated_at=time.time())], ignore_conflicts=True
    )


def _claim_sql(vendor: str) -> str:
    """`try_acquire`'s UPDATE as one prepared text: built with the ORM's expressions it cost
    more CPU than the round trip (a session runner makes hundreds of claims a second)."""
    least, greatest = ("LEAST", "GREATEST") if vendor == "postgresql" else ("MIN", "MAX")
    elapsed = f"{greatest}(%(now)s - updated_at, 0.0)"
    requests = f"{least}(%(rpm)s, requests + {elapsed} * %(rpm)s / 60.0)"
    tokens = f"{least}(%(tpm)s, tokens + {elapsed} * %(tpm)s / 60.0)"
    # Every SET expression reads the row as it was, as the WHERE does.
    return (
        f"UPDATE {LLMBudgetState._meta.db_table} SET requests = {requests} - 1.0, "
        f"tokens = CASE WHEN %(tpm)s > 0 THEN {tokens} - %(cost)s ELSE tokens END, "
        f"updated_at = {greatest}(updated_at, %(now)s) "
        f"WHERE name = %(name)s AND {requests} >= 1.0 AND (%(tpm)s <= 0 OR {tokens} >= %(cost)s)"
    )


def _claim(budget: Budget, *, cost: float, now: float) -> bool:
    params: dict[str, float | str] = {"now": now, "rpm": float(budget.requests_per_minute), "tpm": float(budget.tokens_per_minute),
              "cost": cost, "name": budget.name}
    connection = connections[router.db_for_write(LLMBudgetState)]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(connection.vendor), params)
        return cursor.rowcount == 1


# The same bucket as `_claim_sql` in Redis: one script, run atomically by the server.
# Returns {1} when granted, else {0, seconds until it could be} (as text: Redis makes Lua
# numbers integers).
_CLAIM_LUA = """
local now, rpm, tpm, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'requests', 'tokens', 'updated_at')
local updated = tonumber(state[3]) or now
local elapsed = math.max(now - updated, 0)
local requests = math.min(rpm, (tonumber(state[1]) or rpm) + elapsed * rpm / 60)
local tokens = math.min(tpm, (tonumber(state[2]) or tpm) + elapsed * tpm / 60)
if requests >= 1 and (tpm <= 0 or tokens >= cost) then
  if tpm > 0 then tokens = tokens - cost end
  redis.call('HSET', KEYS[1], 'requests', requests - 1, 'tokens', tokens, 'updated_at', math.max(now, updated))
  return {1}
end
local wait = (1 - requests) / (rpm / 60)
if tpm > 0 then wait = math.max(wait, (cost - tokens) / (tpm / 60)) end
return {0, tostring(math.max(wait, 0.01))}
"""
# Tokens the provider counted beyond (or below) the estimate; the level may go below zero.
_SETTLE_LUA = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens then
  redis.call('HSET', KEYS[1], 'tokens', math.min(tonumber(ARGV[1]), tokens + tonumber(ARGV[2])))
end
return 1
"""


def _redis_key(budget: Budget) -> str:
    return f"caseloop:llm-budget:{budget.name}"


def _redis_try_acquire(budget: Budget, *, cost: float) -> float | None:
    """The claim on Redis when `REDIS_URL` is set (no row for every process to queue on): 0.0,
    or the wait; None when Redis does not answer (the database takes the claim then)."""
    if not settings.REDIS_URL:
        return None
    try:
        granted = redis_for(settings.REDIS_URL).eval(
            _CLAIM_LUA, 1, _redis_key(budget), time.time(), float(budget.requests_per_minute),
            float(budget.tokens_per_minute), cost,
        )
    except redis.RedisError:
        logger.warning("LLM budget %s: Redis failed, claimed on the database", budget.name)
        return None
    return 0.0 if int(granted[0]) == 1 else float(granted[1])


def try_acquire(budget: Budget, *, tokens: int) -> float:
    """Spend one request and `tokens` of the budget: 0.0 when granted, else the seconds until
    the budget could grant it (nothing is spent then)."""
    if budget.requests_per_minute <= 0:
        return 60.0
    # A request larger than a minute's tokens could never be granted: it takes the whole minute.
    cost = float(min(tokens, budget.tokens_per_minute)) if budget.tokens_per_minute > 0 else 0.0
    on_redis = _redis_try_acquire(budget, cost=cost)
    if on_redis is not None:
        return on_redis
    for _ in range(2):
        now = time.time()
        if _claim(budget, cost=cost, now=now):
            return 0.0
        state = LLMBudgetState.objects.filter(name=budget.name).values("requests", "tokens", "updated_at").first()
        if state is not None:
            break
        ensure(budget.name)  # first use of this budget: create its row (full) and claim again
    else:
        return 1.0
    elapsed = max(now - state["updated_at"], 0.0)
    rate = budget.requests_per_minute / 60.0
    have = min(budget.requests_per_minute, state["requests"] + elapsed * rate)
    wait = max((1.0 - have) / rate, 0.0)
    if budget.tokens_per_minute > 0:
        token_rate = budget.tokens_per_minute / 60.0
        have_tokens = min(budget.tokens_per_minute, state["tokens"] + elapsed * token_rate)
        wait = max(wait, (cost - have_tokens) / token_rate)
    return max(wait, 0.01)


def settle(budget: Budget, *, charged: int, used: int) -> None:
    """Correct the estimate once the provider has counted: refund what was not used, or charge
    the excess (the level may go below zero; later claims then wait for it to refill)."""
    if budget.tokens_per_minute <= 0 or charged == used:
        return
    if settings.REDIS_URL:
        try:
            redis_for(settings.REDIS_URL).eval(_SETTLE_LUA, 1, _redis_key(budget), float(budget.tokens_per_minute),
                                               float(charged - used))
            return
        except redis.RedisError:
            logger.warning("LLM budget %s: Redis failed, settled on the database", budget.name)
    LLMBudgetState.objects.filter(name=budget.name).update(
        tokens=Least(Value(float(budget.tokens_per_minute)), F("tokens") + float(charged - used), output_field=FloatField())
    )
