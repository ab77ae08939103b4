"""How many analytics queries run at once: `ANALYTICS_CONCURRENCY_PER_KEY` per API key and
`ANALYTICS_CONCURRENCY_GLOBAL` in all, shared by every process through `AnalyticsSlot` rows.

A query holds one slot of its key and one global slot while it runs. The API does not wait for a
slot: over the limit it answers 429 at once, so a key's heavy queries cost that key and never hold
more web workers than the global limit (set it below the number of web workers). A session's
step (in the session runtime, off the web workers) waits up to `ANALYTICS_SLOT_WAIT_S` instead.
Claims are conditional UPDATEs outside any transaction, as in `reflection.llm.ratelimit`.
"""
from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.utils import timezone

from agents.tools.models import AnalyticsSlot

GLOBAL = "global"
_EPOCH = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)
_POLL_S = 0.1


class AnalyticsBusy(Exception):
    """Every slot of the key (or of all keys) is taken; `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def key_scope(key_id: object) -> str:
    return f"key:{key_id}" if key_id else ""


def retry_after_s() -> int:
    """A running query ends within the statement timeout: a slot is free by then."""
    return max(1, math.ceil(int(settings.ANALYTICS_STATEMENT_TIMEOUT_MS) / 1000))


def _lease() -> timedelta:
    # Longer than any query may run (the statement timeout, the connection, the plan), so only a
    # dead holder's slot ever expires.
    return timedelta(milliseconds=2 * int(settings.ANALYTICS_STATEMENT_TIMEOUT_MS)) + timedelta(seconds=30)


def _claim(scope: str, limit: int, holder: str) -> int | None:
    if AnalyticsSlot.objects.filter(scope=scope, slot__lt=limit).count() < limit:
        AnalyticsSlot.objects.bulk_create(
            [AnalyticsSlot(scope=scope, slot=i, until=_EPOCH) for i in range(limit)], ignore_conflicts=True
        )
    now = timezone.now()
    free = list(AnalyticsSlot.objects.filter(scope=scope, slot__lt=limit, until__lte=now).values_list("slot", flat=True))
    random.shuffle(free)  # concurrent claimers rarely race for the same row
    for slot in free:
        won = AnalyticsSlot.objects.filter(scope=scope, slot=slot, until__lte=now).update(
            holder=holder, until=now + _lease()
        )
        if won == 1:
            return slot
    return None


def _release(scope: str, slot: int, holder: str) -> None:
    AnalyticsSlot.objects.filter(scope=scope, slot=slot, holder=holder).update(holder="", until=_EPOCH)


def _try_claim(scope: str, holder: str) -> list[tuple[str, int]]:
    """Both slots (the key's, then a global one) or raise `AnalyticsBusy` holding neither."""
    claimed: list[tuple[str, int]] = []
    retry_after = retry_after_s()
    per_key, overall = int(settings.ANALYTICS_CONCURRENCY_PER_KEY), int(settings.ANALYTICS_CONCURRENCY_GLOBAL)
    if scope:
        slot = _claim(scope, per_key, holder)
        if slot is None:
            raise AnalyticsBusy(
                f"This API key already runs {per_key} analytics quer{'y' if per_key == 1 else 'ies'} at once "
                f"(ANALYTICS_CONCURRENCY_PER_KEY); retry when one has finished.", retry_after=retry_after)
        claimed.append((scope, slot))
    slot = _claim(GLOBAL, overall, holder)
    if slot is None:
        for held in claimed:
            _release(*held, holder)
        raise AnalyticsBusy(
            f"The analytics database already runs {overall} queries at once (ANALYTICS_CONCURRENCY_GLOBAL); "
            f"retry when one has finished.", retry_after=retry_after)
    claimed.append((GLOBAL, slot))
    return claimed


@contextmanager
def analytics_slot(*, key_id: object = None, wait_s: float = 0.0) -> Iterator[None]:
    """Hold a slot of `key_id`'s scope and a global one while the block runs; raises
    `AnalyticsBusy` when none is free within `wait_s` seconds (0: at once)."""
    holder = uuid.uuid4().hex
    scope = key_scope(key_id)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            claimed = _try_claim(scope, holder)
            break
        except AnalyticsBusy:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(_POLL_S, left))
    try:
        yield
    finally:
        for held in claimed:
            _release(*held, holder)
