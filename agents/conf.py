"""Settings of the supervisor and its workers, with the defaults documented in docs/agents.md.

Each can be set in `config.settings` (read from the environment there); the defaults let the
embedded product run with no configuration.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Evaluation: an agent passes at this quality score (0..1).
    "QUALITY_THRESHOLD": 0.6,
    "AGENTS_MAX_ITERATIONS": 3,
    "AGENTS_AGENT_TIMEOUT_S": 30.0,
    "AGENTS_SESSION_TIMEOUT_S": 120.0,
    "AGENTS_PLANNER_LLM_TIMEOUT_S": 10.0,
    # The best case's plan is reused when its cosine similarity to the query reaches this.
    "AGENTS_CASE_SIMILARITY": 0.8,
    # The supervisor's own LLM budget (planner, Text2SQL, judge, answer), shared by every process;
    # the defaults are OpenAI's tier-1 limits for gpt-4o-mini. Suggestions keep LLM_CALLS_PER_MINUTE.
    "AGENTS_LLM_REQUESTS_PER_MINUTE": 500,
    "AGENTS_LLM_TOKENS_PER_MINUTE": 200_000,
    # How long one LLM call of a session waits for that budget before the session falls back.
    "AGENTS_LLM_BUDGET_WAIT_S": 30.0,
    # Similar cases retrieved for the planner (examples and warnings); measured in docs/benchmarks.md.
    "AGENTS_SIMILAR_CASES": 4,
    # Analytics database for Text2SQL: sqlite:///path or postgres://...; empty = the demo file.
    "ANALYTICS_DATABASE_URL": "",
    "ANALYTICS_ALLOWED_TABLES": ["customers", "products", "orders", "order_items", "support_tickets"],
    "ANALYTICS_STATEMENT_TIMEOUT_MS": 5000,
    "ANALYTICS_ROW_CAP": 500,
    # A result is bounded in bytes too: each cell, and all rows together (agents/tools/result_bounds.py).
    "ANALYTICS_MAX_CELL_BYTES": 4096,
    "ANALYTICS_MAX_RESULT_BYTES": 1_000_000,
    # None: calibrated for the embedding model (casebank.search.embeddings.vector_threshold).
    "RETRIEVAL_VECTOR_THRESHOLD": None,
    # A sentence-transformers CrossEncoder (name or path) that reranks retrieval; empty: heuristic.
    "RERANKER_MODEL": "",
    "SSE_KEEPALIVE_S": 15.0,
    "SSE_POLL_S": 0.25,
}


def get(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def analytics_database_url() -> str:
    url = get("ANALYTICS_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{Path(settings.BASE_DIR) / 'var' / 'analytics.sqlite3'}"
