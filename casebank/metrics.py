"""Prometheus metrics of the case bank and the shared infrastructure, served at `/metrics`.

django-prometheus already exports request counts, latencies, database and cache calls; these
are the product's own. Other apps record through the small functions below rather than
touching the collectors, so names and labels stay in one place. Each process keeps its own
counters (see docs/scaling.md for gunicorn's multiprocess mode).
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge

CACHE_REQUESTS = Counter(
    "caseloop_cache_requests_total",
    "Layered cache lookups by layer (l1 memory, l2 Redis) and result (hit, miss, error).",
    ["layer", "result"],
)


def cache_event(layer: str, result: str) -> None:
    CACHE_REQUESTS.labels(layer=layer, result=result).inc()


def _count(layer: str, result: str) -> float:
    return CACHE_REQUESTS.labels(layer=layer, result=result)._value.get()


def cache_hit_ratio() -> float:
    """Share of lookups answered by either layer since the process started (0 when none)."""
    hits = _count("l1", "hit") + _count("l2", "hit")
    lookups = _count("l1", "hit") + _count("l1", "miss")
    return hits / lookups if lookups else 0.0


CACHE_HIT_RATIO = Gauge(
    "caseloop_cache_hit_ratio", "Share of layered-cache lookups answered from L1 or L2 (this process)."
)
CACHE_HIT_RATIO.set_function(cache_hit_ratio)

ENQUEUE_FAILURES = Counter(
    "caseloop_enqueue_failures_total",
    "Tasks the broker did not take (unreachable, or skipped while backing off); their work waits for the sweeper.",
    ["task"],
)


def enqueue_failed(task: str) -> None:
    ENQUEUE_FAILURES.labels(task=task).inc()
