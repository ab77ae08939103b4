"""The admin dashboard (admin home) over 1,000,000 logs / 10,000 cases.

Logs are loaded as a steady stream would have left them (each stored a second after its run,
over the last 29 days, plus a busy last hour), then one reflection run stores its analyses.
Target (issue #19): the whole page, rendered for a logged-in superuser, < 200 ms on PostgreSQL.
"""
from __future__ import annotations

import os
import random
import statistics
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from config.dashboard import selectors
from reflection.analysis import services
from reflection.models import ExecutionLog, ReflectionTrigger
from tests.bench.bench_analysis import COLUMNS, _cases, _rows

NAME = "dashboard"
TITLE = "Admin dashboard (1,000,000 logs / 10,000 cases)"
LOGS = 1_000_000
CASES = 10_000
LAST_HOUR = 30_000


def _steady(rows, *, last_hour: bool = False):
    """Each log stored a second after its run (as a live stream, not a backlog import)."""
    now = timezone.now()
    for i, row in enumerate(rows):
        created = now - timedelta(seconds=1 + i % 3600) if last_hour else row[14]
        yield row[:14] + (created, created + timedelta(seconds=1))


def _copy(rows) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        sql = f"COPY {ExecutionLog._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cursor.cursor.copy(sql) as copy:
            copy.set_types(["uuid", "uuid", "int4", "uuid", "bool", "text", "text", "text", "int4", "int4", "int4",
                            "float8", "text", "jsonb", "timestamptz", "timestamptz"])
            for row in rows:
                copy.write_row(row)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {ExecutionLog._meta.db_table}")


def _median_ms(function, repeat: int = 9) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


@override_settings(REFLECTION_INGEST_SETTLE_SECONDS=0)
def run(context: dict) -> str:
    out = context["stdout"]
    lines = [f"Database: {context['database_label']}.", ""]
    if connection.vendor != "postgresql":
        return "\n".join(lines + ["The dashboard benchmark runs on PostgreSQL only (`make bench`)."])
    rng = random.Random(19)
    case_ids = _cases(CASES)
    now = timezone.now() - timedelta(seconds=5)
    started = time.perf_counter()
    _copy(_steady(_rows(case_ids, LOGS - LAST_HOUR, rng, now)))
    _copy(_steady(_rows(case_ids, LAST_HOUR, rng, now), last_hour=True))
    out.write(f"loaded {LOGS:,} logs in {time.perf_counter() - started:.1f} s")
    with transaction.atomic():
        first = services.reflection_run_start(trigger=ReflectionTrigger.COMMAND, enqueue=False)
    services.reflection_run_execute(first.pk)

    user = get_user_model().objects.create_superuser("bench", password="pw")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    assert client.get("/admin/").status_code == 200  # warm caches and plans
    # As served: the figures come from the cache for DASHBOARD_CACHE_SECONDS after one view
    # computed them. Then every view computing them (the first view of each period).
    page_median, page_worst = _median_ms(lambda: client.get("/admin/"))
    with override_settings(DASHBOARD_CACHE_SECONDS=0):
        cold_median, cold_worst = _median_ms(lambda: client.get("/admin/"))
    figures_median, _ = _median_ms(lambda: selectors.dashboard())
    parts = {name: _median_ms(lambda f=f: f(now=timezone.now()))[0] for name, f in (
        ("needs a person (suggestions, new cases)", selectors.needs_person),
        ("health (warnings, last 24 h of logs, runs)", selectors.health),
        ("ingestion per minute, last hour", selectors.ingestion_per_minute),
        ("LLM use", selectors.llm_usage),
        ("sessions by status", selectors.sessions_by_outcome),
    )}
    trend_median, _ = _median_ms(selectors.bank_trend)
    board = selectors.dashboard()
    lines += [
        "| measurement | result | target |",
        "|---|---|---|",
        f"| `GET /admin/` (dashboard + app list), superuser, median of 9, as served (figures cached for "
        f"{settings.DASHBOARD_CACHE_SECONDS} s) | {page_median:.1f} ms (max {page_worst:.1f}) | < 200 ms |",
        f"| `GET /admin/`, figures computed on every view (the first view of each period) | {cold_median:.1f} ms "
        f"(max {cold_worst:.1f}) | |",
        f"| of which the figures (`config.dashboard.selectors.dashboard`) | {figures_median:.1f} ms | |",
        *[f"| — {name} | {ms:.1f} ms | |" for name, ms in parts.items()],
        f"| — success-rate trend from stored analyses | {trend_median:.1f} ms | |",
        "",
        f"{LOGS:,} logs over {CASES:,} cases, the last 29 days, each stored a second after its run; "
        f"{board.figure('logs_24h').value:,} in the last 24 h and {sum(n for _, n in board.ingestion_per_minute):,} "
        f"stored in the last hour; one reflection run's {first.pk and CASES:,} stored analyses behind the trend. "
        "No query counts the whole log table: the last 24 h and the last hour are index ranges.",
        f"Load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the machine is shared).",
        "",
        _verdict(page_median, cold_median, parts["health (warnings, last 24 h of logs, runs)"]),
    ]
    return "\n".join(lines)


def _verdict(page_ms: float, cold_ms: float, health_ms: float) -> str:
    served = ("The target (< 200 ms for the whole page) is met." if page_ms < 200 else
              "The target (< 200 ms for the whole page) is not met in this run.")
    return (
        f"{served} The figures are computed at most once per `DASHBOARD_CACHE_SECONDS` and shared by every "
        "replica (the page says when they were computed); the view that computes them takes the second row. "
        f"Its largest part is the last 24 hours of logs ({health_ms:.0f} ms): the count is an index range, the "
        "success rate reads each of those rows from the table (an index on (created_at) INCLUDE (success) would "
        "make it index-only at a cost to every insert, so it is not added). On a machine shared by eight builds "
        "(see the load average) every figure here is several times its idle value."
    )
