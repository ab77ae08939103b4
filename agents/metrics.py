"""Prometheus metrics of the worker agents; `/metrics` derives the hit ratio when scraped.

`agent_cache_lookup(agent=, hit=)` per cached-result lookup. The layered cache underneath also
counts each lookup per layer (`caseloop_cache_requests_total`); this counter says which agent's
results were reused.
"""
from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter

AGENT_CACHE_REQUESTS = Counter(
    "caseloop_agent_cache_requests_total",
    "Agent result cache lookups by agent and result (hit: served from L1 or L2, miss: computed).",
    ["agent", "result"],
)
AGENT_CACHE_HIT_RATIO_HELP = "Share of agent result lookups served from the layered cache, per agent."


def agent_cache_lookup(*, agent: str, hit: bool) -> None:
    AGENT_CACHE_REQUESTS.labels(agent=agent, result="hit" if hit else "miss").inc()


def hit_ratio(counts: Mapping[tuple[str, str], float], *, agent: str) -> float:
    """Hits over lookups for one agent, from `{(agent, result): count}`; 0 when none."""
    hits, misses = counts.get((agent, "hit"), 0.0), counts.get((agent, "miss"), 0.0)
    return hits / (hits + misses) if hits + misses else 0.0
