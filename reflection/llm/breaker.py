"""Circuit breaker whose state lives in the Django cache, so every process sees the same state.

Closed → open after `failures` consecutive failed calls; open → half-open after `reset_seconds`,
when exactly one caller (an atomic `cache.add`) may try; its success closes the breaker, its
failure opens it again. With Redis as the cache this holds across machines; with the local-memory
cache of the embedded default it holds per process.
"""
from __future__ import annotations

import time

from django.core.cache import cache

from reflection import metrics

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class BreakerOpen(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"circuit open, retry in {retry_after:.0f} s")
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(self, name: str, *, failures: int, reset_seconds: float) -> None:
        self.name = name
        self.failures = failures
        self.reset_seconds = reset_seconds
        self._failures_key = f"breaker:{name}:failures"
        self._opened_key = f"breaker:{name}:opened_at"
        self._trial_key = f"breaker:{name}:trial"

    def state(self) -> str:
        opened_at = cache.get(self._opened_key)
        if opened_at is None:
            return CLOSED
        return OPEN if time.time() - opened_at < self.reset_seconds else HALF_OPEN

    def before_call(self) -> None:
        """Raise `BreakerOpen` unless a call may go out now."""
        opened_at = cache.get(self._opened_key)
        if opened_at is None:
            return
        waited = time.time() - opened_at
        if waited < self.reset_seconds:
            raise BreakerOpen(self.reset_seconds - waited)
        # Half-open: only one trial call at a time across all processes.
        if not cache.add(self._trial_key, 1, timeout=max(int(self.reset_seconds), 1)):
            raise BreakerOpen(self.reset_seconds)
        metrics.set_breaker_state(name=self.name, state=HALF_OPEN)

    def record_success(self) -> None:
        keys = [self._failures_key, self._opened_key, self._trial_key]
        # One read, and a delete only when there is something to clear: every LLM call that
        # succeeds comes here, hundreds a second under a session runner's load.
        found = cache.get_many(keys)
        if self._opened_key in found:
            metrics.set_breaker_state(name=self.name, state=CLOSED)
        if found:
            cache.delete_many(keys)

    def record_failure(self) -> None:
        if cache.get(self._opened_key) is not None:
            # A failed half-open trial: open again for a full period.
            cache.set(self._opened_key, time.time(), timeout=None)
            cache.delete(self._trial_key)
            metrics.set_breaker_state(name=self.name, state=OPEN)
            return
        cache.add(self._failures_key, 0, timeout=None)
        try:
            count = cache.incr(self._failures_key)
        except ValueError:  # evicted between add and incr
            cache.set(self._failures_key, 1, timeout=None)
            count = 1
        if count >= self.failures:
            cache.set(self._opened_key, time.time(), timeout=None)
            cache.delete_many([self._failures_key, self._trial_key])
            metrics.set_breaker_state(name=self.name, state=OPEN)

    def reset(self) -> None:
        self.record_success()
