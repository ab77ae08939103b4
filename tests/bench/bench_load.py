"""HTTP load: 32 concurrent clients, mixed traffic, against the production servers.

gunicorn (sync workers, as `scripts/serve.sh web` runs it) serves the API; the same read mix is
then sent to uvicorn (ASGI, the SSE server) to show why the API is not served there. Loopback
only, bounded in time. The load generator is an asyncio HTTP/1.1 keep-alive client in this
process; it shares the 2 cores with the servers and PostgreSQL.
"""
from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import orjson
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from casebank.access import services as access_services
from casebank.access.scopes import ALL_SCOPES
from casebank.cases import services as case_services
from casebank.models import ApiTier
from reflection.analysis.services import case_analysis_record
from reflection.logs import services as ingestion
from tests.bench.support import percentile, redis_server, server

NAME = "load"
TITLE = "HTTP load: mixed traffic, 32 clients, gunicorn (API) vs uvicorn"
CLIENTS = 32
DURATION_S = float(os.environ.get("BENCH_LOAD_SECONDS", "20"))
WEB_WORKERS = 4
CASES = 100
SEED_LOGS = 20_000
LOG_BATCH = 100
# (name, weight): what an agent fleet plus a dashboard send.
TARGET_RATE = 300  # requests/s, SPEC section 8
MIX = [("log batch (100)", 20), ("case search", 30), ("case read", 30), ("log list", 10), ("analysis read", 10)]
TOPICS = ["revenue", "churn", "latency", "refund", "invoice", "forecast", "inventory", "support", "fraud", "pricing"]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _seed(rng: random.Random) -> tuple[list[str], str]:
    case_ids = []
    for index in range(CASES):
        topic = TOPICS[index % len(TOPICS)]
        case = case_services.case_create(
            title=f"{topic.title()} report {index}",
            query=f"Show {topic} by region and month for segment {index}",
            plan=[{"agent": "data_analysis", "action": f"aggregate {topic}"}],
            category=f"analytics/{topic}",
            tags=[topic],
            actor="bench",
        )
        case_ids.append(str(case.id))
    now = timezone.now()
    items = [
        {"case_id": rng.choice(case_ids), "success": rng.random() < 0.8, "execution_time_ms": rng.randint(50, 4000),
         "error_type": "", "created_at": (now - timedelta(seconds=rng.randint(0, 20 * 86400))).isoformat()}
        for _ in range(SEED_LOGS)
    ]
    for start in range(0, len(items), 1000):
        ingestion.logs_ingest(records=ingestion.parse_batch(items[start:start + 1000]))
    for case_id in case_ids:  # what dashboards read: each case analysed once, as the daily run does
        case_analysis_record(case_id=case_id)
    # A reader of every client's logs (a dashboard): the reflection scope and admin's view permission.
    name = f"bench-load-{uuid.uuid4().hex[:8]}"
    reader = get_user_model().objects.create_user(name)
    reader.user_permissions.add(Permission.objects.get(codename="view_executionlog"))
    _, key = access_services.api_key_create(name=name, tier=ApiTier.PREMIUM, user=reader, scopes=ALL_SCOPES)
    return case_ids, key


def _request(kind: str, case_ids: list[str], rng: random.Random) -> tuple[str, str, bytes | None]:
    case_id = rng.choice(case_ids)
    if kind == "log batch (100)":
        body = [{"id": str(uuid.uuid4()), "case_id": case_id, "success": rng.random() < 0.8,
                 "execution_time_ms": rng.randint(50, 4000), "tokens_in": 800, "tokens_out": 90}
                for _ in range(LOG_BATCH)]
        return "POST", "/api/logs/", orjson.dumps(body)
    if kind == "case search":
        query = f"{rng.choice(TOPICS)} by {rng.choice(['region', 'month', 'segment'])}"
        return "POST", "/api/cases/search/", orjson.dumps({"query": query, "k": 10, "mode": "bm25"})
    if kind == "case read":
        return "GET", f"/api/cases/{case_id}/", None
    if kind == "log list":
        return "GET", f"/api/logs/?case={case_id}&page_size=20", None
    return "GET", f"/api/reflection/cases/{case_id}/analysis?history=30", None


def _wire(host: str, port: int, key: str, request: tuple[str, str, bytes | None]) -> bytes:
    method, path, body = request
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Token {key}\r\n"
            f"Accept: application/json\r\nConnection: keep-alive\r\n")
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


class RequestPool:
    """Every request serialised before the clock starts, so the load generator spends its CPU
    on sending and receiving only (it shares the 2 cores with the servers). Reads are reused
    round-robin; each log batch is used once, because re-sent ids are (rightly) not stored."""

    def __init__(self, host: str, port: int, key: str, case_ids: list[str], mix: list[tuple[str, int]],
                 seconds: float, seed: int) -> None:
        rng = random.Random(seed)
        self.plan = [name for name, weight in mix for _ in range(weight)]
        self.rng = rng
        self.requests: dict[str, list[bytes]] = {}
        self.next: dict[str, int] = defaultdict(int)
        for name, weight in mix:
            # Enough batches for 600 requests/s, twice the target; reads repeat.
            count = int(600 * seconds * weight / 100) + 50 if name == "log batch (100)" else 500
            self.requests[name] = [_wire(host, port, key, _request(name, case_ids, rng)) for _ in range(count)]

    def take(self) -> tuple[str, bytes]:
        kind = self.rng.choice(self.plan)
        pool = self.requests[kind]
        index = self.next[kind]
        self.next[kind] = index + 1
        if kind == "log batch (100)" and index >= len(pool):
            raise RuntimeError("the pool ran out of unique log batches; raise its size")
        return kind, pool[index % len(pool)]


async def _client(host: str, port: int, pool: RequestPool, stop_at: float, samples: dict, statuses: dict,
                  schedule: list[float] | None = None) -> None:
    """Closed loop (next request when the last answered) or, with `schedule`, open loop: each
    request goes at its planned time, and its latency counts from that time, so a slow server
    cannot hide its queue by slowing the client down (no coordinated omission)."""
    reader, writer = await asyncio.open_connection(host, port)
    planned = iter(schedule or ())
    try:
        while time.perf_counter() < stop_at:
            kind, wire = pool.take()
            started = time.perf_counter()
            if schedule is not None:
                at = next(planned, None)
                if at is None or at >= stop_at:
                    break
                if at > started:
                    await asyncio.sleep(at - started)
                started = at
            writer.write(wire)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the server closed an idle connection
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(wire)
                head = await reader.readuntil(b"\r\n\r\n")
            lowered = head.lower()
            at_length = lowered.find(b"content-length:")
            length = int(head[at_length + 15:head.index(b"\r\n", at_length)]) if at_length >= 0 else 0
            await reader.readexactly(length)
            samples[kind].append(time.perf_counter() - started)
            statuses[int(head[9:12])] += 1
            if b"connection: close" in lowered:  # gunicorn's sync workers close after each response
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def _load(base: str, key: str, case_ids: list[str], mix: list[tuple[str, int]], seconds: float,
                seed: int = 0, rate: float | None = None) -> tuple[dict, dict, float]:
    """CLIENTS connections for `seconds`: as fast as answers come, or at `rate` requests/s in all."""
    host, port = base.removeprefix("http://").split(":")
    pool = RequestPool(host, int(port), key, case_ids, mix, seconds, seed)
    samples: dict[str, list[float]] = defaultdict(list)
    statuses: dict[int, int] = defaultdict(int)
    started = time.perf_counter()
    stop_at = started + seconds
    schedules: list[list[float] | None] = [None] * CLIENTS
    if rate:
        # Client i sends requests i, i + CLIENTS, ... of an evenly spaced stream.
        times = [started + n / rate for n in range(int(seconds * rate))]
        schedules = [times[i::CLIENTS] for i in range(CLIENTS)]
    await asyncio.gather(*(
        _client(host, int(port), pool, stop_at, samples, statuses, schedule) for schedule in schedules
    ))
    return samples, statuses, time.perf_counter() - started


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (Linux /proc), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _pids_named(*names: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _row(label: str, values: list[float], elapsed: float) -> str:
    ms = [v * 1000 for v in values]
    return (f"| {label} | {len(values):,} | {len(values) / elapsed:,.0f} | {percentile(ms, 0.5):.1f} | "
            f"{percentile(ms, 0.95):.1f} | {percentile(ms, 0.99):.1f} |")


def _table(samples: dict, elapsed: float) -> list[str]:
    lines = ["| traffic | requests | req/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for name, _ in MIX:
        if samples.get(name):
            lines.append(_row(name, samples[name], elapsed))
    everything = [v for values in samples.values() for v in values]
    lines.append(_row("**all**", everything, elapsed))
    return lines


def _measure(*, server_env: dict, key: str, case_ids: list[str]) -> tuple[tuple, list[str]]:
    with server(kind="gunicorn", workers=WEB_WORKERS, extra_env=server_env) as (base, master):
        asyncio.run(_load(base, key, case_ids, MIX, 2.0, seed=1))  # warm-up: connections, caches, imports
        workers = _children(master.pid)
        postgres, redis = _pids_named("postgres", "postmaster"), _pids_named("redis-server")
        before = (time.process_time(), _cpu_seconds(workers), _cpu_seconds(postgres), _cpu_seconds(redis))
        samples, statuses, elapsed = asyncio.run(_load(base, key, case_ids, MIX, DURATION_S, seed=2))
        after = (time.process_time(), _cpu_seconds(workers), _cpu_seconds(postgres), _cpu_seconds(redis))
        rss = [_rss_mb(pid) for pid in workers]
        master_rss = _rss_mb(master.pid)
        # The same mix offered at the target rate: the latency users see at 300 requests/s.
        paced, paced_statuses, paced_elapsed = asyncio.run(
            _load(base, key, case_ids, MIX, DURATION_S, seed=5, rate=TARGET_RATE)
        )
    cpu = tuple(a - b for a, b in zip(after, before, strict=False))
    reads = [("case search", 50), ("case read", 50)]
    comparison = ["", "Same reads (search 50%, case read 50%), 10 s each, same 2 cores:", "",
                  "| server | req/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
    for kind, workers_n in (("gunicorn", WEB_WORKERS), ("uvicorn", 2)):
        with server(kind=kind, workers=workers_n, extra_env=server_env) as (base, _):
            asyncio.run(_load(base, key, case_ids, reads, 1.0, seed=3))
            read_samples, _, read_elapsed = asyncio.run(_load(base, key, case_ids, reads, 10.0, seed=4))
        values = [v * 1000 for vs in read_samples.values() for v in vs]
        comparison.append(f"| {kind} ({workers_n} workers) | {len(values) / read_elapsed:,.0f} | "
                          f"{percentile(values, 0.5):.1f} | {percentile(values, 0.95):.1f} | {percentile(values, 0.99):.1f} |")
    return (samples, statuses, elapsed, rss, master_rss, cpu, (paced, paced_statuses, paced_elapsed)), comparison


def run(context: dict) -> str:
    rng = random.Random(6)
    case_ids, key = _seed(rng)
    with redis_server() as redis_url:
        # Production configuration: PostgreSQL + Redis (cache, throttle counters, task broker).
        # Throttling stays on; the premium rate is raised because one key plays a whole fleet.
        server_env = {"API_RATE_PREMIUM": "10000000/min", "REDIS_URL": redis_url}
        (samples, statuses, elapsed, rss, master_rss, cpu, paced_run), comparison = _measure(
            server_env=server_env, key=key, case_ids=case_ids
        )
    out = [
        f"## {TITLE}",
        "",
        "Targets (SPEC 8): p95 < 100 ms for non-LLM endpoints, >= 300 requests/s on 2 cores, web process "
        "< 200 MB RSS without the embedding model.",
        "",
        f"{CLIENTS} concurrent keep-alive clients for {DURATION_S:.0f} s on loopback, {CASES} cases and "
        f"{SEED_LOGS:,} logs seeded, PostgreSQL + a throwaway Redis (cache, throttle counters, task broker), "
        "one premium key (throttle on, rate raised). Every request is serialised before the clock starts. Mix: "
        + ", ".join(f"{name} {weight}%" for name, weight in MIX)
        + ". Search is BM25 so the web process never loads the embedding model; the analysis read is "
        "`GET /api/reflection/cases/{id}/analysis` (each case analysed once while seeding).",
        "",
    ]
    total = sum(statuses.values())
    errors = sum(count for code, count in statuses.items() if code >= 500)
    everything = [v for values in samples.values() for v in values]
    p95 = percentile([v * 1000 for v in everything], 0.95)
    out += [f"**gunicorn, {WEB_WORKERS} sync workers** (`scripts/serve.sh web`):", "", *_table(samples, elapsed), ""]
    out.append(
        f"Total {total / elapsed:,.0f} requests/s, p95 {p95:.1f} ms, statuses {dict(sorted(statuses.items()))}, "
        f"5xx {errors}. RSS per worker {min(rss):.0f}–{max(rss):.0f} MB (master {master_rss:.0f} MB). "
        f"Targets: p95 < 100 ms {'met' if p95 < 100 else 'NOT met'}, >= 300 req/s "
        f"{'met' if total / elapsed >= 300 else 'NOT met'}, worker < 200 MB {'met' if max(rss) < 200 else 'NOT met'}."
    )
    generator, web, database, cache = cpu
    out += ["", f"CPU used during the run, of {2 * elapsed:.0f} core-seconds available: web workers {web:.1f} s, "
                f"PostgreSQL {database:.1f} s, Redis {cache:.1f} s, load generator {generator:.1f} s "
                f"({1000 * web / max(total, 1):.2f} ms of web-worker CPU per request)."]
    paced, paced_statuses, paced_elapsed = paced_run
    paced_all = [v * 1000 for values in paced.values() for v in values]
    paced_p95 = percentile(paced_all, 0.95)
    paced_5xx = sum(count for code, count in paced_statuses.items() if code >= 500)
    out += [
        "",
        f"**Same mix offered at {TARGET_RATE} requests/s** ({CLIENTS} connections, open loop: each request leaves "
        "at its planned time and its latency counts from then, so queueing shows):",
        "",
        *_table(paced, paced_elapsed),
        "",
        f"Served {sum(paced_statuses.values()) / paced_elapsed:,.0f} requests/s, p95 {paced_p95:.1f} ms, 5xx {paced_5xx}. "
        f"Target p95 < 100 ms at {TARGET_RATE} requests/s: {'met' if paced_p95 < 100 else 'NOT met'}. "
        f"(Closed loop, {CLIENTS} clients always waiting make latency = {CLIENTS} / throughput by Little's law: "
        f"p95 < 100 ms there needs well over {CLIENTS * 10} requests/s.)",
    ]
    return "\n".join(out + comparison)
