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
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from django.db.models import F, FloatField, Value
from django.db.models.functions import Greatest, Least

from reflection.llm.errors import LLMUnavailable
from reflection.llm.models import LLMBudgetState

__all__ = ["Budget", "LLMBudgetState", "LLMUnavailable", "budget_for", "ensure", "register", "settle",
           "estimate_tokens", "try_acquire"]

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


def _levels(budget: Budget, now: float) -> tuple[Least, Least]:
    elapsed = Greatest(Value(now) - F("updated_at"), Value(0.0), output_field=FloatField())
    requests = Least(Value(float(budget.requests_per_minute)), F("requests") + elapsed * (budget.requests_per_minute / 60.0),
                     output_field=FloatField())
    tokens = Least(Value(float(budget.tokens_per_minute)), F("tokens") + elapsed * (budget.tokens_per_minute / 60.0),
                   output_field=FloatField())
    return requests, tokens


def try_acquire(budget: Budget, *, tokens: int) -> float:
    """Spend one request and `tokens` of the budget: 0.0 when granted, else the seconds until
    the budget could grant it (nothing is spent then)."""
    if budget.requests_per_minute <= 0:
        return 60.0
    # A request larger than a minute's tokens could never be granted: it takes the whole minute.
    cost = float(min(tokens, budget.tokens_per_minute)) if budget.tokens_per_minute > 0 else 0.0
    for _ in range(2):
        now = time.time()
        requests_left, tokens_left = _levels(budget, now)
        rows = LLMBudgetState.objects.filter(name=budget.name).alias(r=requests_left, t=tokens_left).filter(r__gte=1.0)
        changes: dict = {"requests": requests_left - 1.0, "updated_at": Greatest(F("updated_at"), Value(now))}
        if budget.tokens_per_minute > 0:
            rows = rows.filter(t__gte=cost)
            changes["tokens"] = tokens_left - cost
        if rows.update(**changes) == 1:
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
    LLMBudgetState.objects.filter(name=budget.name).update(
        tokens=Least(Value(float(budget.tokens_per_minute)), F("tokens") + float(charged - used), output_field=FloatField())
    )
