"""Prometheus metrics of ingestion, reflection, the task queue and the LLM client.

Call sites use the functions, never the collectors:
- `record_ingestion(created=, duplicates=, seconds=)` after a batch is stored (wired in the log API);
- `observe_analysis(seconds=, kind=)` around one case analysis (`kind="case"`) or a batch run (`"run"`);
- `record_llm_call(outcome=, tokens_in=, tokens_out=, cost_usd=, seconds=)` per LLM request,
  outcome one of `ok | error | rejected` (rejected: the breaker or the rate limit said no);
- `set_breaker_state(name=, state=)` when a circuit breaker changes state (`closed | half_open | open`).
Queue depth is read from the django-q2 broker at scrape time (`config/metrics.py`). Under
gunicorn and qcluster every process writes to `PROMETHEUS_MULTIPROC_DIR`; a scrape merges them.
"""
from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

LOGS_INGESTED = Counter("caseloop_logs_ingested_total", "Execution logs stored (new ids only).")
LOGS_DUPLICATE = Counter("caseloop_logs_duplicate_total", "Execution logs re-sent with an id already stored.")
INGEST_SECONDS = Histogram(
    "caseloop_ingest_batch_seconds",
    "Time to validate and store one batch of logs.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ANALYSIS_SECONDS = Histogram(
    "caseloop_analysis_seconds",
    "Duration of one case analysis (kind=case) or one reflection run (kind=run).",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LLM_CALLS = Counter("caseloop_llm_calls_total", "LLM requests by outcome (ok, error, rejected).", ["outcome"])
LLM_TOKENS = Counter("caseloop_llm_tokens_total", "LLM tokens by direction (in, out).", ["direction"])
LLM_COST = Counter("caseloop_llm_cost_usd_total", "Estimated LLM cost in US dollars.")
LLM_SECONDS = Histogram(
    "caseloop_llm_call_seconds", "LLM request latency.", buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
)
BREAKER_STATES = ("closed", "half_open", "open")
# The breaker's state is shared (it lives in the cache), so across processes the latest
# transition any of them saw is the state; "mostrecent" merges exactly that.
BREAKER_STATE = Gauge(
    "caseloop_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ["name"],
    multiprocess_mode="mostrecent",
)
QUEUE_DEPTH_HELP = "Tasks waiting in the django-q2 broker (-1: broker unreachable)."


def record_ingestion(*, created: int, duplicates: int, seconds: float) -> None:
    LOGS_INGESTED.inc(created)
    LOGS_DUPLICATE.inc(duplicates)
    INGEST_SECONDS.observe(seconds)


def observe_analysis(*, seconds: float, kind: str = "case") -> None:
    ANALYSIS_SECONDS.labels(kind=kind).observe(seconds)


def record_llm_call(
    *, outcome: str, tokens_in: int = 0, tokens_out: int = 0, cost_usd: float = 0.0, seconds: float | None = None
) -> None:
    LLM_CALLS.labels(outcome=outcome).inc()
    LLM_TOKENS.labels(direction="in").inc(max(0, tokens_in))
    LLM_TOKENS.labels(direction="out").inc(max(0, tokens_out))
    LLM_COST.inc(max(0.0, cost_usd))
    if seconds is not None:
        LLM_SECONDS.observe(seconds)


def set_breaker_state(*, name: str, state: str) -> None:
    if state not in BREAKER_STATES:
        raise ValueError(f"Unknown breaker state {state!r}; expected one of {BREAKER_STATES}.")
    BREAKER_STATE.labels(name=name).set(BREAKER_STATES.index(state))


def queue_depth() -> float:
    """Tasks waiting in the broker; -1 when it cannot be asked (the scrape must not fail)."""
    try:
        from django_q.brokers import get_broker

        return float(get_broker().queue_size())
    except Exception as error:
        logger.warning("Queue depth unavailable: %s", type(error).__name__)
        return -1.0
