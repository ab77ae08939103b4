"""A limit of N LLM requests in any 60 seconds, shared by every process through the database.

The client claims a slot for every HTTP request it sends (retries and re-asks included), so N
is what the provider sees.

N rows (`LLMRateSlot`) hold the time each slot was last used. Claiming one is a conditional
UPDATE (`used_at <= now - 60 s` → now) that changes exactly one row or none; the database
serialises concurrent claims of the same row (PostgreSQL re-checks the WHERE after the row
lock, SQLite has one writer), so two processes can never both win one slot. Call it outside a
transaction, or the row lock is held until the caller commits.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone

from reflection.llm.models import LLMRateSlot

WINDOW = timedelta(seconds=60)
_EPOCH = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)


def _ensure_slots(limit: int) -> None:
    if LLMRateSlot.objects.filter(slot__lt=limit).count() < limit:
        LLMRateSlot.objects.bulk_create(
            [LLMRateSlot(slot=i, used_at=_EPOCH) for i in range(limit)], ignore_conflicts=True
        )


def try_acquire(*, limit: int, now: datetime | None = None) -> bool:
    """Claim one request of the shared budget; False when all `limit` slots were used in the last minute."""
    if limit <= 0:
        return False
    now = now or timezone.now()
    _ensure_slots(limit)
    cutoff = now - WINDOW
    free = list(
        LLMRateSlot.objects.filter(slot__lt=limit, used_at__lte=cutoff).values_list("slot", flat=True)
    )
    # Start at a random free slot so concurrent callers rarely race for the same row.
    random.shuffle(free)
    for slot in free:
        if LLMRateSlot.objects.filter(slot=slot, used_at__lte=cutoff).update(used_at=now) == 1:
            return True
    return False


def seconds_until_free(*, limit: int, now: datetime | None = None) -> float:
    """0 when a slot is free now, else the seconds until the oldest claim leaves the window."""
    now = now or timezone.now()
    _ensure_slots(limit)
    oldest = LLMRateSlot.objects.filter(slot__lt=limit).order_by("used_at").values_list("used_at", flat=True).first()
    if oldest is None:
        return 0.0
    return max((oldest + WINDOW - now).total_seconds(), 0.0)
