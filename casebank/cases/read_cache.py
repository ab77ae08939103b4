"""Cached reads of the case bank: search results and single cases, as the API returns them.

Search was the most expensive common request under load (docs/benchmarks.md), and agents ask
the same tasks again and again. Every key carries the bank's *generation*, a counter that every
case write through `casebank.cases.services` moves on (`bank_changed`), so one write retires every
cached read at once in every process: the counter lives in the cache every process shares
(`READ_CACHE_GENERATION_ALIAS`: Redis, or without Redis a file-based cache on the machine, so a
success rate the queue worker stores shows in the web process at once). Entries also expire
after `READ_CACHE_SECONDS` (default 30; 0 turns the cache off), which bounds what is not worth
a retirement: usage counters, counted in the task queue for every search.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from django.conf import settings
from django.core.cache import caches
from django.db import transaction

from core.cache import layered_get, layered_set

T = TypeVar("T")
GENERATION_KEY = "casebank:generation"


def _counter() -> Any:
    return caches[getattr(settings, "READ_CACHE_GENERATION_ALIAS", "default")]


def _ttl() -> int:
    return int(getattr(settings, "READ_CACHE_SECONDS", 30))


def _generation() -> int | None:
    """The bank's generation from the shared cache; `None` when the cache cannot say."""
    cache = _counter()
    try:
        value = cache.get(GENERATION_KEY)
        if value is None:
            cache.add(GENERATION_KEY, 1, None)
            value = cache.get(GENERATION_KEY)
    except Exception:  # a dead Redis must not fail a read: serve uncached
        return None
    return int(value) if value is not None else None


def _move_on() -> None:
    # On the file-based cache `incr` is a read and a write, not atomic: two processes moving
    # on together may both write the same next value, which still retires every older key.
    cache = _counter()
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # never read yet (or evicted): any new value retires old keys
        cache.add(GENERATION_KEY, 1, None)
    except Exception:  # cache down: entries still expire on their own
        pass


def bank_changed() -> None:
    """Retire every cached read; call it after the write. It acts now, so this process never
    serves the old state, and again after the commit, because a reader in between may have
    cached the rows as they were before the commit."""
    _move_on()
    transaction.on_commit(_move_on)


def cached_read(kind: str, params: Any, produce: Callable[[], T]) -> T:
    """`produce()`, cached under the bank's generation and a digest of `params`."""
    ttl = _ttl()
    generation = _generation() if ttl > 0 else None
    if generation is None:
        return produce()
    digest = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]
    key = f"casebank:read:{kind}:{generation}:{digest}"
    value = layered_get(key)
    if value is None:
        value = produce()
        layered_set(key, value, ttl)
    return value
