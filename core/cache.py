"""A two-level cache: process-local memory (L1) in front of the shared Redis (L2).

L1 answers without a network hop; L2 shares results between replicas. When Redis is down the
cache degrades to L1 plus the producer (the database), never to an error: after a failed L2
call the layer is skipped for `CACHE_L2_RETRY_SECONDS`, so a dead Redis costs one timeout per
process per interval instead of one per request. L1 entries live at most `CACHE_L1_SECONDS`
because another replica cannot invalidate this process's memory.

Aliases come from settings: `CACHE_L1_ALIAS` (local memory) and `CACHE_L2_ALIAS` (empty when no
Redis is configured, which leaves L1 alone).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import caches

from core import metrics

logger = logging.getLogger(__name__)
T = TypeVar("T")
_MISSING = object()
_state = threading.local()
_l2_down_until = 0.0
_l2_lock = threading.Lock()


def _l1():
    return caches[getattr(settings, "CACHE_L1_ALIAS", "l1")]


def _l2():
    alias = getattr(settings, "CACHE_L2_ALIAS", "")
    return caches[alias] if alias else None


def _l1_ttl(ttl: int) -> int:
    return max(1, min(ttl, int(getattr(settings, "CACHE_L1_SECONDS", 30))))


def l2_available() -> bool:
    return _l2() is not None and time.monotonic() >= _l2_down_until


def _l2_failed(error: Exception) -> None:
    global _l2_down_until
    with _l2_lock:
        _l2_down_until = time.monotonic() + float(getattr(settings, "CACHE_L2_RETRY_SECONDS", 5))
    metrics.cache_event("l2", "error")
    # The message only: a connection error's repr may carry the Redis URL with its password.
    logger.warning("L2 cache unavailable, serving from L1 and the source: %s", type(error).__name__)


def reset_l2_backoff() -> None:
    """Forget a previous L2 failure (tests, and an operator who just restarted Redis)."""
    global _l2_down_until
    with _l2_lock:
        _l2_down_until = 0.0


def layered_get(key: str, *, l1_seconds: int | None = None) -> Any:
    """The cached value, or `None` when neither layer holds it.

    A value found in L2 is copied to this process's memory for `CACHE_L1_SECONDS`, or for
    `l1_seconds` when shorter: a caller whose entries must not outlive a bound (a revoked API
    key, `API_KEY_CACHE_SECONDS`) passes it, since no delete reaches another process's memory."""
    value = _l1().get(key, _MISSING)
    if value is not _MISSING:
        metrics.cache_event("l1", "hit")
        return value
    metrics.cache_event("l1", "miss")
    l2 = _l2()
    if l2 is None or not l2_available():
        return None
    try:
        value = l2.get(key, _MISSING)
    except Exception as error:  # any transport error: the cache must never fail a request
        _l2_failed(error)
        return None
    if value is _MISSING:
        metrics.cache_event("l2", "miss")
        return None
    metrics.cache_event("l2", "hit")
    # Reuse the L2 entry's remaining life would need a second call; the L1 cap bounds staleness.
    seconds = int(getattr(settings, "CACHE_L1_SECONDS", 30))
    _l1().set(key, value, _l1_ttl(seconds if l1_seconds is None else min(seconds, l1_seconds)))
    return value


def layered_set(key: str, value: Any, ttl: int) -> None:
    _l1().set(key, value, _l1_ttl(ttl))
    l2 = _l2()
    if l2 is None or not l2_available():
        return
    try:
        l2.set(key, value, ttl)
    except Exception as error:
        _l2_failed(error)


def layered_delete(key: str) -> None:
    """Drops the key from this process's L1 and from L2; other replicas' L1 expire on their own."""
    _l1().delete(key)
    l2 = _l2()
    if l2 is None or not l2_available():
        return
    try:
        l2.delete(key)
    except Exception as error:
        _l2_failed(error)


def layered_get_or_set(key: str, producer: Callable[[], T], ttl: int) -> T:
    """The cached value for `key`, else `producer()` stored in both layers for `ttl` seconds.

    `None` is never cached (it means "missing" here), so a producer returning `None` runs again.
    """
    value = layered_get(key)
    if value is not None:
        return value
    value = producer()
    if value is not None:
        layered_set(key, value, ttl)
    return value
