"""The Python client (clients/python): what recording a run costs the agent's thread, how fast
the background sender delivers to a real server, and the memory a queued log holds."""
from __future__ import annotations

import os
import statistics
import sys
import time
import tracemalloc

from casebank.access import services as access_services
from casebank.cases import services as case_services
from reflection.models import ExecutionLog
from tests.bench.support import ROOT, server

sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))  # this checkout's client, as its tests use

from caseloop_client import Caseloop  # noqa: E402
from caseloop_client.buffer import LogBuffer  # noqa: E402
from caseloop_client.logs import build_log  # noqa: E402

NAME = "client"
TITLE = "Python client: recording cost, delivery, queue memory"
RUNS = 100_000
QUEUED = 10_000


def _deliver(base: str, key: str, case_id: str, *, batch_size: int, runs: int) -> tuple[str, int]:
    client = Caseloop(base, key, batch_size=batch_size, flush_interval=0.5, max_queue=runs * 2, timeout=60)
    per_call: list[int] = []
    started = time.perf_counter()
    for index in range(runs):
        before = time.perf_counter_ns()
        with client.run(case_id, model="gpt-4o-mini", context={"step": index % 5}) as run:
            run.add_tokens(input=800, output=90)
        per_call.append(time.perf_counter_ns() - before)
    recorded = time.perf_counter() - started
    delivered = client.flush(timeout=600)
    wall = time.perf_counter() - started
    stats = client.close()
    per_call.sort()
    row = (
        f"| batches of {batch_size} | {runs:,} | {statistics.median(per_call) / 1000:.1f} µs "
        f"(p99 {per_call[int(len(per_call) * 0.99)] / 1000:.1f} µs) | {runs / recorded:,.0f} runs/s | "
        f"{runs / wall:,.0f} logs/s ({wall:.1f} s) | sent {stats.sent:,}, retried {stats.retried}, "
        f"dropped {stats.dropped}, failed {stats.failed}{'' if delivered else ', NOT all delivered in time'} |"
    )
    return row, stats.sent


def _queue_memory() -> str:
    buffer = LogBuffer(QUEUED)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(QUEUED):
        buffer.put(build_log(success=index % 4 != 0, execution_time_ms=412.5, case_id="3f1c2a9e-0000-4000-8000-000000000001",
                             case_version=3, error_type="" if index % 4 else "TimeoutError",
                             error_message="" if index % 4 else "SQL query exceeded 5000 ms", tokens_in=812,
                             tokens_out=96, cost_usd=0.0012, model="gpt-4o-mini", context={"step": index % 5}))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return f"{held / QUEUED:,.0f} bytes per queued log ({held / 2**20:.1f} MiB for {QUEUED:,}: the default `max_queue`)"


def run(context: dict) -> str:
    case = case_services.case_create(title="Bench client", query="benchmark the client", plan="Do it", actor="bench")
    _, key = access_services.api_key_create(name="bench-client", tier="premium")
    before = ExecutionLog.objects.count()
    rows, sent = [], 0
    with server(kind="gunicorn", workers=2) as (base, _):
        for batch_size, runs in ((100, 20_000), (1_000, RUNS)):
            row, count = _deliver(base, key, str(case.id), batch_size=batch_size, runs=runs)
            rows.append(row)
            sent += count
    stored = ExecutionLog.objects.count() - before
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            "One agent thread records runs in a loop (`with client.run(case_id) as run: run.add_tokens(...)`) "
            "while the client's background thread sends them to gunicorn (2 sync workers, premium key) on the "
            "same 2 cores. *Per run* is the agent's cost of one `with` block: building the log (id, clean "
            "values) and the queue's append; the network is never on that path. *Delivered* is from the first "
            "run to `flush()` returning.",
            "",
            "| sender | runs | per run (median) | recording rate | delivered | counts |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Logs recorded {sent:,}, stored {stored:,} (nothing lost, nothing duplicated: {'yes' if stored == sent else 'NO'}).",
            "",
            f"Queue memory (tracemalloc, logs with every field set): {_queue_memory()}.",
            "",
            f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the machine is shared; "
            "the recording rate and delivery fall with it, the per-run median barely moves).",
        ]
    )
