"""Experiments on the hot paths: log ingestion with attribution, and `resolve_plan`.

Every one of 20 cases runs an experiment (20 % canary). The same 1,000-log batches are ingested
in process (typed decoding, validation, COPY) three ways: logs that carry the current version
(no experiment query), logs that carry no version but a session id (attributed to their arm:
one more query per batch and a SHA-256 per log), and logs of cases without experiments, as
the baseline. Then `resolve_plan` for keys on either arm.
"""
from __future__ import annotations

import random
import statistics
import time
import uuid

import orjson

from casebank.cases import services as case_services
from casebank.models import Case
from reflection.experiments.selectors import resolve_plan
from reflection.logs import services as ingestion
from reflection.logs.decoding import decode_typed
from reflection.suggestions.services import suggestion_approve
from tests.reflection.suggestion_helpers import make_suggestion

NAME = "experiments"
TITLE = "Experiments: attribution at ingestion, resolve_plan"
BATCH = 1_000
BATCHES = 20
PLAN = [{"agent": "data_analysis", "action": "Aggregate"}]
REVISED = [{"agent": "data_analysis", "action": "Aggregate with a timeout"}]


def _cases(prefix: str, count: int, *, experiment: bool) -> list[str]:
    ids = []
    for i in range(count):
        case = case_services.case_create(title=f"{prefix} case {i}", query=f"{prefix} task number {i}", plan=PLAN,
                                         actor="bench")
        if experiment:
            suggestion_approve(suggestion=make_suggestion(case, revised_plan=REVISED), acting_user=None)
        ids.append(str(case.id))
    return ids


def _bodies(case_ids: list[str], rng: random.Random, *, versioned: bool) -> list[bytes]:
    bodies = []
    for _ in range(BATCHES):
        logs = []
        for _ in range(BATCH):
            log = {"case_id": rng.choice(case_ids), "session_id": str(uuid.UUID(int=rng.getrandbits(128))),
                   "success": rng.random() < 0.8, "execution_time_ms": rng.randint(50, 4000)}
            if versioned:
                log["case_version"] = 1
            logs.append(log)
        bodies.append(orjson.dumps(logs))
    return bodies


def _ingest_ms(bodies: list[bytes]) -> tuple[float, float]:
    """Median ms per batch of validation (with attribution) and of the whole path."""
    validate, total = [], []
    for body in bodies:
        t0 = time.perf_counter()
        records = ingestion.parse_payload(decode_typed(body))
        t1 = time.perf_counter()
        ingestion.logs_ingest(records=records)
        t2 = time.perf_counter()
        validate.append((t1 - t0) * 1000)
        total.append((t2 - t0) * 1000)
    return statistics.median(validate), statistics.median(total)


def run(context: dict) -> str:
    rng = random.Random(15)
    with_experiments = _cases("Experiment", 20, experiment=True)
    without = _cases("Plain", 20, experiment=False)
    rows = []
    for label, case_ids, versioned in (
        ("no experiment, no `case_version` (baseline)", without, False),
        ("experiments, logs carry `case_version`", with_experiments, True),
        ("experiments, no `case_version`: attributed from `session_id`", with_experiments, False),
    ):
        validate_ms, total_ms = _ingest_ms(_bodies(case_ids, rng, versioned=versioned))
        rows.append(f"| {label} | {validate_ms:.1f} ms | {total_ms:.1f} ms | {BATCH / total_ms * 1000:,.0f} logs/s |")
    case = Case.objects.get(pk=with_experiments[0])
    keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(2_000)]
    timings: dict[str, list[float]] = {"current": [], "candidate": []}
    for key in keys:
        started = time.perf_counter()
        served = resolve_plan(case=case, key=key)
        timings[served.arm or "current"].append((time.perf_counter() - started) * 1000)
    resolve_rows = [f"| {arm} arm | {len(times):,} | {statistics.median(times):.2f} ms | "
                    f"{sorted(times)[int(len(times) * 0.95)]:.2f} ms |" for arm, times in timings.items()]
    return "\n".join([
        f"## {TITLE}",
        "",
        f"In process, {BATCHES} batches of {BATCH:,} logs over 20 cases each way (median per batch). Attribution "
        "asks for the batch's experiments once and hashes each log's key (docs/experiments.md).",
        "",
        "| logs | decode + validate | whole ingest | throughput |",
        "|---|---|---|---|",
        *rows,
        "",
        "`resolve_plan` for one case under experiment (20 % canary), 2,000 random keys: one indexed query, "
        "and a second for the candidate's plan.",
        "",
        "| served | keys | median | p95 |",
        "|---|---|---|---|",
        *resolve_rows,
    ])
