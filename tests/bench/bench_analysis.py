"""Reflection analysis: one case with 10,000 logs, and a batch run over 1,000,000 logs / 10,000 cases.

Data is loaded with COPY on PostgreSQL (bulk_create on SQLite, where the batch is skipped).
Targets (SPEC section 8): < 50 ms for one case, < 3 s for the batch on PostgreSQL.
"""
from __future__ import annotations

import functools
import os
import random
import statistics
import time
import uuid
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from casebank.models import Case
from reflection.analysis import engine, services
from reflection.analysis.engine import queries
from reflection.analysis.engine.stats import message_template
from reflection.models import ExecutionLog, ReflectionTrigger

NAME = "analysis"
TITLE = "Reflection analysis (one case; batch of 1,000,000 logs / 10,000 cases)"
SINGLE_LOGS = 10_000
BATCH_LOGS = 1_000_000
BATCH_CASES = 10_000
ERRORS = [
    ("TimeoutError", "timed out after {n} ms calling 'tool-{m}'"),
    ("SQLSyntaxError", "syntax error at or near \"{m}\" at position {n}"),
    ("RetrievalEmpty", "no documents above 0.7 for query #{n}"),
    ("RateLimitError", "429 from upstream, retry after {m} s"),
]


def _cases(count: int) -> list[uuid.UUID]:
    now = timezone.now()
    cases = [
        Case(id=uuid.uuid4(), title=f"bench case {i}", query=f"bench query {i}", plan=[{"agent": "a"}],
             created_at=now, updated_at=now)
        for i in range(count)
    ]
    Case.objects.bulk_create(cases, batch_size=2_000)
    return [case.id for case in cases]


def _rows(case_ids: list[uuid.UUID], count: int, rng: random.Random, now: datetime):
    # Logs happened over the last 29 days and were ingested now, as a backlog import would be.
    ingested = timezone.now()
    for i in range(count):
        success = rng.random() < 0.85
        kind, template = ("", "") if success else rng.choice(ERRORS)
        created = now - timedelta(seconds=rng.randint(60, 29 * 86400))
        message = template.format(n=rng.randint(1, 99_999), m=rng.randint(1, 50)) if template else ""
        yield (
            uuid.uuid4(), case_ids[i % len(case_ids)], 1, None, success, kind, message,
            message_template(message) if message else None,  # as ingestion stores it
            int(rng.lognormvariate(6, 0.8)), 100, 50, 0.001, "bench", {}, created, ingested,
        )


COLUMNS = ("id", "case_id", "case_version", "session_id", "success", "error_type", "error_message", "error_template",
           "execution_time_ms", "tokens_in", "tokens_out", "cost_usd", "model", "context", "created_at", "ingested_at")


def _load(case_ids: list[uuid.UUID], count: int, rng: random.Random) -> float:
    now = timezone.now() - timedelta(seconds=5)
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            sql = f"COPY {ExecutionLog._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"
            with cursor.cursor.copy(sql.replace("FROM STDIN", "FROM STDIN (FORMAT BINARY)")) as copy:
                copy.set_types(["uuid", "uuid", "int4", "uuid", "bool", "text", "text", "text", "int4", "int4", "int4",
                                "float8", "text", "jsonb", "timestamptz", "timestamptz"])
                for row in _rows(case_ids, count, rng, now):
                    copy.write_row(row)
        with connection.cursor() as cursor:
            # As autovacuum does within a minute of a bulk load (it sets the pages all-visible,
            # which scans then skip checking row by row); a run racing that first pass is slower.
            cursor.execute(f"VACUUM ANALYZE {ExecutionLog._meta.db_table}")
    else:
        logs = [ExecutionLog(**dict(zip(COLUMNS, row[:13] + ({},) + row[14:], strict=False))) for row in _rows(case_ids, count, rng, now)]
        ExecutionLog.objects.bulk_create(logs, batch_size=2_000)
    return time.perf_counter() - started


def _median_ms(function, repeat: int = 7) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


# The bench's own COPYs have committed before each run starts: no settle lag to wait out.
@override_settings(REFLECTION_INGEST_SETTLE_SECONDS=0)
def run(context: dict) -> str:
    rng = random.Random(42)
    out = context["stdout"]
    lines = [f"Database: {context['database_label']}.", ""]

    [single] = _cases(1)
    load_s = _load([single], SINGLE_LOGS, rng)
    out.write(f"loaded {SINGLE_LOGS} logs in {load_s:.1f} s")
    engine.analyze_case(case_id=single)  # warm caches and plans
    median, worst = _median_ms(lambda: engine.analyze_case(case_id=single))
    record_median, _ = _median_ms(lambda: services.case_analysis_record(case_id=single), repeat=5)
    lines += [
        "| measurement | result | target |",
        "|---|---|---|",
        f"| analyse one case, {SINGLE_LOGS:,} logs (`analyze_case`, median of 7) | {median:.1f} ms (max {worst:.1f}) | < 50 ms |",
        f"| same, stored with metrics and warning (`case_analysis_record`, median of 5) | {record_median:.1f} ms | |",
    ]

    if connection.vendor != "postgresql":
        lines += ["", "The 1,000,000-log batch runs on PostgreSQL only (`make bench`)."]
        return "\n".join(lines)

    case_ids = _cases(BATCH_CASES)
    load_s = _load(case_ids, BATCH_LOGS, rng)
    out.write(f"loaded {BATCH_LOGS} logs in {load_s:.1f} s ({BATCH_LOGS / load_s:,.0f} rows/s)")

    started = time.perf_counter()
    engine.analyze_cases(case_ids=case_ids)
    engine_s = time.perf_counter() - started
    bounds = engine.make_bounds(window_days=30, now=None)
    parts = {}
    ranked = functools.partial(queries.ranked_errors, top_templates=engine.TOP_TEMPLATES)
    for name, query in (("figures + percentiles", queries.raw_figures), ("errors ranked by template", ranked)):
        started = time.perf_counter()
        with transaction.atomic():  # as the engine runs them: same transaction, same work_mem
            queries.use_batch_memory()
            size = engine.chunk_size()
            for offset in range(0, len(case_ids), size):
                query(case_ids[offset:offset + size], bounds)
        parts[name] = time.perf_counter() - started

    with transaction.atomic():
        first = services.reflection_run_start(trigger=ReflectionTrigger.COMMAND, enqueue=False)
    started = time.perf_counter()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        first = profiler.runcall(services.reflection_run_execute, first.pk)
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    else:
        first = services.reflection_run_execute(first.pk)
    run_s = time.perf_counter() - started

    # Nothing new since: the next run reads only the new logs (none) and finishes at once.
    with transaction.atomic():
        second = services.reflection_run_start(trigger=ReflectionTrigger.COMMAND, enqueue=False)
    started = time.perf_counter()
    second = services.reflection_run_execute(second.pk)
    idle_s = time.perf_counter() - started

    # 1 % of the cases get new logs: a run analyses just those.
    _load(case_ids[:100], 10_000, rng)
    with transaction.atomic():
        third = services.reflection_run_start(trigger=ReflectionTrigger.COMMAND, enqueue=False)
    started = time.perf_counter()
    third = services.reflection_run_execute(third.pk)
    incremental_s = time.perf_counter() - started

    lines += [
        f"| engine only: `analyze_cases` over {BATCH_LOGS:,} logs / {BATCH_CASES:,} cases | {engine_s:.2f} s | |",
        *[f"| of which the {name} query | {seconds:.2f} s | |" for name, seconds in parts.items()],
        f"| full batch run (engine + stored analyses + case metrics + warnings), {first.cases_analysed:,} cases | {run_s:.2f} s | < 3 s |",
        f"| next run with no new logs | {idle_s * 1000:.0f} ms ({second.cases_analysed} cases) | |",
        f"| next run after 10,000 new logs on 100 cases | {incremental_s:.2f} s ({third.cases_analysed} cases) | |",
        "",
        f"Loading {BATCH_LOGS:,} logs with COPY (then VACUUM ANALYZE, as autovacuum would) took {load_s:.1f} s. "
        f"The first run sets {first.warnings_set} warnings.",
        f"Load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the machine is shared).",
        "",
        _verdict(run_s, sum(parts.values())),
    ]
    return "\n".join(lines)


def _verdict(run_s: float, scans_s: float) -> str:
    if run_s < 3:
        return (
            "The batch target (< 3 s) is met for a first run over a backlog of 1,000,000 new logs. Most of the run is "
            f"the two grouped scans (figures with exact percentiles; errors ranked by template), {scans_s:.1f} s one "
            "after the other here, which the run overlaps on two connections; the rest is finding and claiming the "
            "cases, storing 10,000 analyses and case metrics, and releasing the claims."
        )
    return (
        f"The batch target (< 3 s) is not met for a first run over a backlog of 1,000,000 new logs: the two grouped "
        f"scans (figures with exact percentiles; errors ranked by template) take {scans_s:.1f} s here one after the "
        f"other (the run overlaps them on two connections), and the run's bookkeeping (claims, 10,000 stored "
        f"analyses, case metrics, watermarks) comes on top. Incremental runs, which read only new logs, take a "
        f"fraction of a second."
    )
