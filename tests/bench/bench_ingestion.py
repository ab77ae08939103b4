"""Execution-log ingestion: in-process service path and end to end through the HTTP API."""
from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import timedelta

import orjson
from django.utils import timezone

from casebank.access import services as access_services
from casebank.cases import services as case_services
from reflection.logs import services as ingestion
from reflection.logs.decoding import decode_typed
from reflection.logs.ids import uuid7
from reflection.models import ExecutionLog
from tests.bench.support import post_all, server, summary_ms

NAME = "ingestion"
TITLE = "Log ingestion (batches of 1,000)"
BATCH = 1_000
HTTP_BATCHES = 240
CLIENTS = 4
ERRORS = ["TimeoutError", "SQLSyntaxError", "RetrievalEmpty", "RateLimitError"]


def _batch(case_ids: list[str], rng: random.Random, *, live: bool = True) -> list[dict]:
    """Live logs: runs of the last minute with UUIDv7 ids, as an agent sends them. Backfill:
    random (v4) ids and runs spread over 30 days, the worst case for every index."""
    now = timezone.now()
    spread = 60 if live else 30 * 86400
    logs = []
    for _ in range(BATCH):
        success = rng.random() < 0.8
        logs.append(
            {
                "id": str(uuid7() if live else uuid.uuid4()),
                "case_id": rng.choice(case_ids),
                "success": success,
                "error_type": "" if success else rng.choice(ERRORS),
                "error_message": "" if success else f"failed after {rng.randint(1, 9000)} ms",
                "execution_time_ms": rng.randint(50, 4000),
                "tokens_in": rng.randint(100, 3000),
                "tokens_out": rng.randint(10, 800),
                "cost_usd": 0.0012,
                "model": "gpt-4o-mini",
                "context": {"step": rng.randint(1, 5)},
                "created_at": (now - timedelta(seconds=rng.randint(0, spread))).isoformat(),
            }
        )
    return logs


def _in_process(case_ids: list[str], rng: random.Random) -> tuple[str, list[bytes]]:
    """The API's path without HTTP: typed decoding, validation, COPY; then the same bodies again
    (every id already stored: the COPY fails and the batch goes through the staging table)."""
    bodies = [orjson.dumps(_batch(case_ids, rng)) for _ in range(20)]
    parse_s, validate_s, insert_s = 0.0, 0.0, 0.0
    for body in bodies:
        t0 = time.perf_counter()
        payload = decode_typed(body)
        t1 = time.perf_counter()
        records = ingestion.parse_payload(payload)
        t2 = time.perf_counter()
        ingestion.logs_ingest(records=records)
        t3 = time.perf_counter()
        parse_s, validate_s, insert_s = parse_s + t1 - t0, validate_s + t2 - t1, insert_s + t3 - t2
    resent = []
    for body in bodies[:5]:
        started = time.perf_counter()
        result = ingestion.logs_ingest(records=ingestion.parse_payload(decode_typed(body)))
        resent.append(time.perf_counter() - started)
        assert result.created == 0, "a re-sent batch stored logs again"
    rows = len(bodies) * BATCH
    total = parse_s + validate_s + insert_s
    return (
        f"| in-process, live logs (one Python process, no HTTP) | {rows / total:,.0f} logs/s | "
        f"typed decoding {parse_s / len(bodies) * 1000:.1f} ms, validation {validate_s / len(bodies) * 1000:.1f} ms, "
        f"insert {insert_s / len(bodies) * 1000:.1f} ms per batch; a re-sent batch (all duplicates) "
        f"{statistics.median(resent) * 1000:.0f} ms |"
    ), bodies


def _http(case_ids: list[str], rng: random.Random, key: str, workers: int, *, live: bool) -> tuple[str, int]:
    bodies = [orjson.dumps(_batch(case_ids, rng, live=live)) for _ in range(HTTP_BATCHES)]
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    with server(kind="gunicorn", workers=workers) as (base, _):
        wall, latencies, failures = post_all(base, "/api/logs/", bodies, headers, clients=CLIENTS, expect=201)
    rows = HTTP_BATCHES * BATCH
    row = (
        f"| HTTP, {'live logs' if live else 'backfill'}, gunicorn {workers} sync workers, {CLIENTS} clients "
        f"| {rows / wall:,.0f} logs/s | "
        f"{HTTP_BATCHES} requests in {wall:.1f} s; per request {summary_ms(latencies)}"
        f"{'; FAILURES: ' + ', '.join(failures[:5]) if failures else ''} |"
    )
    return row, rows


def _admin_list(case_id: str) -> list[str]:
    """The log list in admin over the rows just ingested: no full COUNT, indexed filters."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench-admin", password="unused-bench-password")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    base = "/admin/reflection/executionlog/"
    views = [
        ("first page", base),
        ("page 100", f"{base}?p=100"),
        ("failures only", f"{base}?success__exact=0"),
        ("one error type", f"{base}?error_type=TimeoutError"),
        ("one case (search by id)", f"{base}?q={case_id}"),
    ]
    rows = []
    for label, url in views:
        client.get(url)  # warm caches (error-type choices, plans)
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            status = client.get(url).status_code
            samples.append(time.perf_counter() - started)
        rows.append(f"| {label} | {sorted(samples)[2] * 1000:.0f} ms | {status} |")
    return rows


def run(context: dict) -> str:
    rng = random.Random(7)
    case_ids = [
        str(case_services.case_create(title=f"Bench case {i}", query=f"benchmark task number {i}", plan="Do it", actor="bench").id)
        for i in range(20)
    ]
    _, key = access_services.api_key_create(name="bench-ingestion", tier="premium")
    before = ExecutionLog.objects.count()
    row, _ = _in_process(case_ids, rng)
    rows = [row]
    sent = 20 * BATCH
    for workers, live in ((2, True), (3, True), (2, False)):
        row, count = _http(case_ids, rng, key, workers, live=live)
        rows.append(row)
        sent += count
    stored = ExecutionLog.objects.count() - before
    admin_rows = _admin_list(case_ids[0])
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            "Target: >= 50,000 logs/s end to end on PostgreSQL. Each request carries 1,000 logs with every "
            "field set; bodies are serialised before the clock starts, so the figures are the server's. "
            "*Live logs* are what agents send: runs of the last minute, with client-set UUIDv7 ids (as "
            "docs/architecture.md recommends; logs sent without an id get one on the server). *Backfill* is the "
            "worst case for every index: random UUIDv4 ids and runs spread over 30 days.",
            "",
            "| path | throughput | detail |",
            "|---|---|---|",
            *rows,
            "",
            f"Logs sent {sent:,}, stored {stored:,} (nothing lost, nothing duplicated: {'yes' if stored == sent else 'NO'}).",
            "",
            "Where the time goes (in-process row): msgspec decodes and type-checks the body in one C pass; "
            "validation is what msgspec cannot check (dates, context size) plus one query for the case "
            "ids; the insert is one binary COPY straight into the table, whose time is mostly "
            "PostgreSQL maintaining the primary key and three indexes, plus ~9 µs per row for psycopg to "
            "encode it. Time-ordered ids and times append to the right edge of those indexes; random "
            "ones touch a different page per row, hence the backfill row. A batch with an id already "
            "stored makes the COPY fail and goes through a staging table and `INSERT … ON CONFLICT DO "
            "NOTHING` instead. The web workers, PostgreSQL and the load generator share the same 2 cores.",
            "",
            f"### Admin log list over {stored:,} rows (median of 5, in-process request)",
            "",
            "| view | time | status |",
            "|---|---|---|",
            *admin_rows,
        ]
    )
