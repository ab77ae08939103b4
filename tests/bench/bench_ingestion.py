"""Execution-log ingestion: in-process service path and end to end through the HTTP API."""
from __future__ import annotations

import http.client
import random
import threading
import time
import uuid
from datetime import timedelta
from urllib.parse import urlparse

import orjson
from django.utils import timezone

from casebank import services as case_services
from reflection import ingestion
from reflection.models import ExecutionLog
from tests.bench.support import server, summary_ms

NAME = "ingestion"
TITLE = "Log ingestion (batches of 1,000)"
BATCH = 1_000
HTTP_BATCHES = 240
CLIENTS = 4
ERRORS = ["TimeoutError", "SQLSyntaxError", "RetrievalEmpty", "RateLimitError"]


def _batch(case_ids: list[str], rng: random.Random) -> list[dict]:
    now = timezone.now()
    logs = []
    for _ in range(BATCH):
        success = rng.random() < 0.8
        logs.append(
            {
                "id": str(uuid.uuid4()),
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
                "created_at": (now - timedelta(seconds=rng.randint(0, 30 * 86400))).isoformat(),
            }
        )
    return logs


def _in_process(case_ids: list[str], rng: random.Random) -> str:
    batches = [_batch(case_ids, rng) for _ in range(20)]
    bodies = [orjson.dumps(b) for b in batches]
    parse_s, validate_s, insert_s = 0.0, 0.0, 0.0
    for body in bodies:
        t0 = time.perf_counter()
        items = orjson.loads(body)
        t1 = time.perf_counter()
        records = ingestion.parse_batch(items)
        t2 = time.perf_counter()
        ingestion.logs_ingest(records=records)
        t3 = time.perf_counter()
        parse_s, validate_s, insert_s = parse_s + t1 - t0, validate_s + t2 - t1, insert_s + t3 - t2
    rows = len(bodies) * BATCH
    total = parse_s + validate_s + insert_s
    return (
        f"| in-process (one Python process, no HTTP) | {rows / total:,.0f} logs/s | "
        f"JSON parse {parse_s / len(bodies) * 1000:.1f} ms, validation {validate_s / len(bodies) * 1000:.1f} ms, "
        f"insert {insert_s / len(bodies) * 1000:.1f} ms per batch |"
    )


def _http(case_ids: list[str], rng: random.Random, key: str, workers: int) -> tuple[str, int]:
    bodies = [orjson.dumps(_batch(case_ids, rng)) for _ in range(HTTP_BATCHES)]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(bodies)

    with server(kind="gunicorn", workers=workers) as (base, _):
        target = urlparse(base)

        def client() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                started = time.perf_counter()
                connection.request(
                    "POST", "/api/logs/", body, {"Authorization": f"Token {key}", "Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                connection.close()
                with lock:
                    latencies.append(elapsed)
                    if response.status != 201:
                        failures.append(str(response.status))

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    rows = HTTP_BATCHES * BATCH
    row = (
        f"| HTTP, gunicorn {workers} sync workers, {CLIENTS} clients | {rows / wall:,.0f} logs/s | "
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
    _, key = case_services.api_key_create(name="bench-ingestion", tier="premium")
    before = ExecutionLog.objects.count()
    rows = [_in_process(case_ids, rng)]
    sent = 20 * BATCH
    for workers in (2, 3):
        row, count = _http(case_ids, rng, key, workers)
        rows.append(row)
        sent += count
    stored = ExecutionLog.objects.count() - before
    admin_rows = _admin_list(case_ids[0])
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            "Target: >= 50,000 logs/s end to end on PostgreSQL. Each request carries 1,000 logs with every "
            "field set; bodies are serialised before the clock starts, so the figures are the server's.",
            "",
            "| path | throughput | detail |",
            "|---|---|---|",
            *rows,
            "",
            f"Logs sent {sent:,}, stored {stored:,} (nothing lost, nothing duplicated: {'yes' if stored == sent else 'NO'}).",
            "",
            "Where the time goes (in-process row): COPY into the staging table is ~6 ms per 1,000 rows; most of "
            "the insert is PostgreSQL maintaining the primary key (random UUIDs) and three indexes in "
            "`INSERT … ON CONFLICT`; validation is flat Python (per batch in the in-process row: ~10 µs per log, NUL and range checks included) plus one query for the case ids. "
            "The web workers, PostgreSQL and the load generator share the same 2 cores.",
            "",
            f"### Admin log list over {stored:,} rows (median of 5, in-process request)",
            "",
            "| view | time | status |",
            "|---|---|---|",
            *admin_rows,
        ]
    )
