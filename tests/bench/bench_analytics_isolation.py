"""Analytics isolation: two keys' heavy Text2SQL queries must not slow a third key's reads.

Two API keys run 5 s cross joins from 4 threads each (`POST /api/agents/data-analysis/`, each
query stopped by the 5 s statement timeout; the cost check's bounds are lifted so they reach the
database, as a query the planner underestimates would). Meanwhile a third key reads `GET
/api/cases/`. Its p95 is compared with its p95 before the load: target within 2x. gunicorn as
`scripts/serve.sh web` runs it (4 sync workers), on PostgreSQL, analytics tables in the same
database (the worst case: the heavy queries share the cores with the API's own database).
A refused client waits what Retry-After says before trying again, as a well-behaved client does.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
from django.conf import settings
from django.db import connection

from agents.demo import data as demo_data
from casebank.access import services as access_services
from casebank.cases import services as case_services
from casebank.models import ApiTier
from tests.bench.support import database_url, percentile, server
from tests.support.analytics_pg import demo_analytics_to_postgres, drop_demo_analytics

NAME = "analytics_isolation"
TITLE = "Analytics isolation: 2 keys x 4 threads of 5 s cross joins vs a third key's GET /api/cases/"
WEB_WORKERS = 4
READS = int(os.environ.get("BENCH_ISOLATION_READS", "200"))
LOADED_SECONDS = float(os.environ.get("BENCH_ISOLATION_SECONDS", "15"))
HEAVY_THREADS_PER_KEY = 4
CROSS_JOIN = "SELECT COUNT(*) AS n FROM orders a, orders b, orders c"


def _request(url: str, token: str, body: dict | None = None) -> tuple[int, dict[str, str], float]:
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status, dict(response.headers), time.perf_counter() - started
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, dict(error.headers), time.perf_counter() - started


def _reads(base: str, token: str, count: int, *, min_seconds: float = 0.0) -> list[float]:
    """`count` reads one after another, and on until `min_seconds` have passed (so a loaded run
    spans several 5 s windows of the heavy queries), but never past 3 x `min_seconds` (without
    the limits a read can wait seconds for a worker)."""
    timings: list[float] = []
    started = time.monotonic()
    give_up = started + 3 * min_seconds if min_seconds else float("inf")
    while (len(timings) < count or time.monotonic() - started < min_seconds) and time.monotonic() < give_up:
        status, _headers, seconds = _request(f"{base}/api/cases/?page_size=20", token)
        assert status == 200, status
        timings.append(seconds * 1000)
    return timings


def _heavy(base: str, token: str, stop: threading.Event, outcomes: Counter, lock: threading.Lock) -> None:
    while not stop.is_set():
        status, headers, seconds = _request(f"{base}/api/agents/data-analysis/", token, {"sql": CROSS_JOIN})
        with lock:
            outcomes[(status, round(seconds))] += 1
        if status == 429:
            stop.wait(float(headers.get("Retry-After", "1")))


def run(context: dict) -> str:
    if connection.vendor != "postgresql":
        return "Skipped: PostgreSQL only (the statement timeout and the role are PostgreSQL's)."
    url = database_url()
    tables = list(settings.ANALYTICS_ALLOWED_TABLES)
    with tempfile.TemporaryDirectory(prefix="caseloop-analytics-") as directory:
        source = Path(directory) / "analytics.sqlite3"
        demo_data.create_demo_analytics_db(source)
        demo_analytics_to_postgres(url, source=source, tables=tables)
    tokens = [access_services.api_key_create(name=f"isolation-{i}", tier=ApiTier.PREMIUM)[1] for i in range(3)]
    for i in range(50):
        case_services.case_create(title=f"Isolation case {i}", query=f"How many orders in region {i}?",
                                  plan=[{"agent": "data_analysis", "action": "count"}], category="bench",
                                  tags=["bench"], actor="bench")
    env = {
        "ANALYTICS_DATABASE_URL": url, "ANALYTICS_STATEMENT_TIMEOUT_MS": "5000",
        # Lifted so the cross joins reach the database (the cost check would refuse them).
        "ANALYTICS_MAX_PLAN_ROWS": str(10**15), "ANALYTICS_MAX_PLAN_COST": str(1e15),
        "API_RATE_PREMIUM": "100000/min",
    }
    try:
        limited = _measure(env, tokens)
        # The same load with the limits out of reach: what they buy.
        unlimited = _measure({**env, "ANALYTICS_CONCURRENCY_PER_KEY": "100", "ANALYTICS_CONCURRENCY_GLOBAL": "100"},
                             tokens)
    finally:
        drop_demo_analytics(url, tables=tables)
    per_key, overall = settings.ANALYTICS_CONCURRENCY_PER_KEY, settings.ANALYTICS_CONCURRENCY_GLOBAL
    return "\n".join([
        f"- Server: gunicorn, {WEB_WORKERS} sync workers; {context['database_label']}; analytics tables in the "
        "same database; each heavy client waits Retry-After after a 429",
        f"- With the limits (ANALYTICS_CONCURRENCY_PER_KEY {per_key}, ANALYTICS_CONCURRENCY_GLOBAL {overall}): "
        + _describe(*limited),
        "- Without them (both 100): " + _describe(*unlimited),
        "- Command: `.venv/bin/python scripts/run_bench.py --only analytics_isolation` "
        f"(BENCH_ISOLATION_READS={READS}, BENCH_ISOLATION_SECONDS={LOADED_SECONDS:g})",
    ])


def _measure(env: dict[str, str], tokens: list[str]) -> tuple[list[float], list[float], float, Counter]:
    with server(kind="gunicorn", workers=WEB_WORKERS, extra_env=env) as (base, _process):
        _reads(base, tokens[2], 20)  # warm-up: connections, imports
        unloaded = _reads(base, tokens[2], READS)
        stop, lock, outcomes = threading.Event(), threading.Lock(), Counter[tuple[int, int]]()
        threads = [threading.Thread(target=_heavy, args=(base, tokens[k], stop, outcomes, lock))
                   for k in (0, 1) for _ in range(HEAVY_THREADS_PER_KEY)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the first cross joins are running
        started = time.perf_counter()
        loaded = _reads(base, tokens[2], READS, min_seconds=LOADED_SECONDS)
        loaded_s = time.perf_counter() - started
        stop.set()
        for thread in threads:
            thread.join(30)
    return unloaded, loaded, loaded_s, outcomes


def _describe(unloaded: list[float], loaded: list[float], loaded_s: float, outcomes: Counter) -> str:
    base_p50, base_p95 = percentile(unloaded, 0.5), percentile(unloaded, 0.95)
    load_p50, load_p95 = percentile(loaded, 0.5), percentile(loaded, 0.95)
    ratio = load_p95 / base_p95 if base_p95 else float("inf")
    by_status = Counter()
    for (status, _seconds), count in outcomes.items():
        by_status[status] += count
    ran = [seconds for (status, seconds), count in outcomes.items() if status == 422 for _ in range(count)]
    verdict = "met" if ratio <= 2 else "NOT met"
    others = {s: c for s, c in by_status.items() if s not in (422, 429)}
    return (
        f"third key's `GET /api/cases/?page_size=20`: unloaded p50 {base_p50:.1f} ms, p95 {base_p95:.1f} ms "
        f"({len(unloaded)} reads); under load p50 {load_p50:.1f} ms, p95 {load_p95:.1f} ms ({len(loaded)} reads in "
        f"{loaded_s:.1f} s): **{ratio:.2f}x** the unloaded p95 (target <= 2x: {verdict}). Heavy queries: "
        f"{by_status.get(422, 0)} ran to the 5 s statement timeout (422, ~{(sum(ran) / len(ran)) if ran else 0:.0f} s "
        f"each), {by_status.get(429, 0)} refused at once (429){f', other {others}' if others else ''}."
    )
