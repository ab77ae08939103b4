"""Prometheus metrics of the case bank and the shared infrastructure, served at `/metrics`.

django-prometheus already exports request counts, latencies, database and cache calls; these
are the product's own. Other apps record through the small functions below rather than
touching the collectors, so names and labels stay in one place. Under gunicorn and qcluster
every process writes its counters to `PROMETHEUS_MULTIPROC_DIR` and a scrape merges them
(`config/metrics.py`), which also derives `caseloop_cache_hit_ratio` from the merged counts.
"""
from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter

CACHE_REQUESTS = Counter(
    "caseloop_cache_requests_total",
    "Layered cache lookups by layer (l1 memory, l2 Redis) and result (hit, miss, error).",
    ["layer", "result"],
)
CACHE_HIT_RATIO_HELP = "Share of layered-cache lookups answered from L1 or L2 (every process of this pod)."


def cache_event(layer: str, result: str) -> None:
    CACHE_REQUESTS.labels(layer=layer, result=result).inc()


def cache_hit_ratio(counts: Mapping[tuple[str, str], float]) -> float:
    """Hits in either layer over lookups, from `{(layer, result): count}`; 0 when none.

    Every lookup asks L1 first, so L1 hits + L1 misses count each lookup exactly once.
    """
    lookups = counts.get(("l1", "hit"), 0.0) + counts.get(("l1", "miss"), 0.0)
    hits = counts.get(("l1", "hit"), 0.0) + counts.get(("l2", "hit"), 0.0)
    return hits / lookups if lookups else 0.0


ENQUEUE_FAILURES = Counter(
    "caseloop_enqueue_failures_total",
    "Tasks the broker did not take (unreachable, or skipped while backing off); their work waits for the sweeper.",
    ["task"],
)


def enqueue_failed(task: str) -> None:
    ENQUEUE_FAILURES.labels(task=task).inc()
