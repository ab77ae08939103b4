"""Reflection writes: stored analyses, the warning flag, batch runs, retention.

A run works on a snapshot: it fixes `snapshot_at` when it starts and analyses only logs
ingested up to then, so logs arriving meanwhile go to the next run and nothing is locked.
Two runs never analyse the same case at once: each case is claimed with a conditional write
on `CaseReflectionState` (the rows we changed are ours) and released when done
(`reflection.analysis.run_claims`).

Settle lag: `ingested_at` is stamped inside the ingesting transaction, before it commits, so
a scan at time T may not yet see a log stamped just before T. Ingestion bounds that gap
(`reflection.logs.services`: stamped by the writing statement, which times out after 10 s) well below
`REFLECTION_INGEST_SETTLE_SECONDS`, so a full run snapshots at now - settle: every log stamped
up to its snapshot is visible to its candidate scan, and the next run starts from there
(`since`), so no log falls between two runs. Runs limited to given cases (early trigger,
`reflect --case`) analyse everything up to now, but record the case as analysed only through
now - settle, so a full run still takes the case if a late log commits.
A claim also re-checks the case's watermark: a case another run analysed after this run's
scan is left alone (counted as skipped), so no two runs analyse the same logs of a case.
"""
from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case as SqlCase
from django.db.models import DateTimeField, F, Q, Value, When
from django.utils import timezone

from casebank.cases import services as case_services
from casebank.models import Case, CaseStatus
from core import task_queue
from core.errors import NotFound
from reflection import metrics
from reflection.analysis import engine, run_claims
from reflection.analysis.engine import stats
from reflection.analysis.engine.queries import ids_lookup
from reflection.analysis.types import CaseAnalysisData, SuccessRateDrop
from reflection.logs.services import copy_with_orjson
from reflection.models import (
    CaseAnalysis,
    CaseReflectionState,
    ReflectionRun,
    ReflectionRunStatus,
    ReflectionTrigger,
)
from reflection.suggestions import generation as suggester
from reflection.suggestions.services import cases_under_verification, suggestions_verify_for_case

logger = logging.getLogger(__name__)

REFLECTION_ACTOR = "reflection"
WARNING_BELOW = 0.5
RUN_TASK = "reflection.analysis.tasks.reflection_run_task"
# Runs a sweep looks at, oldest due first.
SWEEP_LIMIT = 100


def ingest_settle() -> timedelta:
    """How far behind now a run's snapshot stays (the settle lag in the module docstring)."""
    return timedelta(seconds=settings.REFLECTION_INGEST_SETTLE_SECONDS)


def _analysed_through(run: ReflectionRun) -> datetime:
    """The watermark a run may record: its snapshot, settled (see the module docstring)."""
    snapshot = run.snapshot_at
    assert snapshot is not None, "a run's snapshot is fixed when it starts (reflection_run_execute)"
    return snapshot - ingest_settle() if run.case_ids else snapshot


# --- one case ---------------------------------------------------------------------------


def _record_from(*, case_id: uuid.UUID, analysis: CaseAnalysisData, run: ReflectionRun | None, validate: bool = True) -> CaseAnalysis:
    record = CaseAnalysis(
        case_id=case_id,
        run=run,
        window_days=analysis["window_days"],
        total_executions=analysis["total_executions"],
        successes=analysis["successes"],
        success_rate=analysis["success_rate"],
        weighted_success_rate=analysis["weighted_success_rate"],
        latency_p95_ms=analysis["latency_ms"]["p95"],
        slow=analysis["slow"],
        confidence=analysis["confidence"],
        anomaly_count=len(analysis["anomalies"]),
        result=analysis,
    )
    if validate:
        record.full_clean(exclude=["case", "run"])
    return record


def has_runs(analysis: CaseAnalysisData) -> bool:
    """Whether the window holds runs of any version. A window without any changes nothing on the
    case; one with runs of other versions only means the current version has no figures yet,
    and the case's rate (the old plan's) is cleared rather than shown for the new plan."""
    return bool(analysis["total_executions"]) or any(row["runs"] for row in analysis.get("versions", []))


def case_metrics(analysis: CaseAnalysisData) -> case_services.CaseMetrics:
    return case_services.CaseMetrics(
        success_rate=analysis["success_rate"], run_count=analysis["total_executions"],
        reuse_helped=analysis["reuse_helped"], reuse_harmed=analysis["reuse_harmed"],
    )


def _apply_warning(*, case_id: uuid.UUID, status: str, analysis: CaseAnalysisData) -> str | None:
    """Set `warning` below 0.5 or on a significant recent drop (`stats.recent_drop`), clear it
    on recovery from both; returns "set", "cleared" or None."""
    success_rate = analysis["success_rate"]
    if success_rate is None:
        return None
    drop = stats.recent_drop(analysis)
    if (success_rate < WARNING_BELOW or drop is not None) and status == CaseStatus.ACTIVE:
        if drop is None or success_rate < WARNING_BELOW:
            reason = f"success rate {success_rate:.1%} is below {WARNING_BELOW:.0%}"
        else:
            reason = (f"success rate fell to {drop['recent_success_rate']:.1%} in the last 24 h from "
                      f"{drop['baseline_success_rate']:.1%} the week before (z = {drop['z']})")
        case_services.case_set_status(case=Case(pk=case_id), status=CaseStatus.WARNING, actor=REFLECTION_ACTOR,
                                      reason=reason)
        return "set"
    if success_rate >= WARNING_BELOW and drop is None and status == CaseStatus.WARNING:
        case_services.case_set_status(
            case=Case(pk=case_id), status=CaseStatus.ACTIVE, actor=REFLECTION_ACTOR,
            reason=f"success rate recovered to {success_rate:.1%}",
        )
        return "cleared"
    return None


@transaction.atomic
def case_analysis_record(*, case_id: uuid.UUID | str, window_days: int = 30, run: ReflectionRun | None = None,
                         now: datetime | None = None, snapshot_at: datetime | None = None) -> CaseAnalysis:
    """Analyse one case now, store it as history, update the case's metrics and warning flag."""
    started = time.perf_counter()
    analysis = engine.analyze_case(case_id=case_id, window_days=window_days, now=now, snapshot_at=snapshot_at)
    metrics.observe_analysis(seconds=time.perf_counter() - started, kind="case")
    key = uuid.UUID(analysis["case_id"])
    record = _record_from(case_id=key, analysis=analysis, run=run)
    record.save()
    if has_runs(analysis):
        case_services.case_update_metrics(case_id=key, metrics=case_metrics(analysis))
    status = Case.objects.filter(pk=key).values_list("status", flat=True).get()
    _apply_warning(case_id=key, status=status, analysis=analysis)
    # Every path that analyses one case (`reflect --case`, the analyze API, a run's own step)
    # refreshes the verdicts of its applied suggestions, as batch runs do.
    if str(key) in cases_under_verification():
        suggestions_verify_for_case(case_id=key)
    return record


# --- batch runs -------------------------------------------------------------------------


def reflection_run_start(*, trigger: str = ReflectionTrigger.API, requested_by: str = "",
                         case_ids: Iterable[uuid.UUID | str] | None = None, window_days: int = 30,
                         enqueue: bool = True) -> ReflectionRun:
    """Queue a run; the worker executes it after this transaction commits (unless the caller
    runs it in-process with `reflection_run_execute`, as `manage.py reflect` does)."""
    engine.validate_window(window_days)
    ids = [str(uuid.UUID(str(case_id))) for case_id in (case_ids or [])]
    if ids:
        known = {str(pk) for pk in Case.objects.filter(pk__in=ids).values_list("pk", flat=True)}
        missing = [case_id for case_id in ids if case_id not in known]
        if missing:
            raise NotFound(f"No case with id {missing[0]}.", errors={"case_ids": missing[:20]})
    run = ReflectionRun(trigger=trigger, requested_by=requested_by[:150], case_ids=ids, window_days=window_days)
    if enqueue:
        # The row is the promise: a lost task is handed out again by the sweeper at `retry_at`.
        # A run executed in-process has none: its starter runs it, no worker can lose it.
        run.retry_at = task_queue.redeliver_at(run.created_at)
    run.full_clean()
    run.save()
    if enqueue:
        run_id = run.pk
        task_queue.enqueue_on_commit(RUN_TASK, run_id, if_unavailable=partial(reflection_run_due_now, run_id=run_id))
    return run


def reflection_run_here(*, requested_by: str, case_ids: Iterable[uuid.UUID | str] | None = None,
                        window_days: int = 30, progress=None) -> ReflectionRun:
    """Start a run and execute it in this process, with no queue or worker between (`manage.py
    reflect`, `seed_demo`). Given `case_ids`, it takes their logs up to now (no settle lag)."""
    with transaction.atomic():
        run = reflection_run_start(trigger=ReflectionTrigger.COMMAND, requested_by=requested_by,
                                   case_ids=case_ids, window_days=window_days, enqueue=False)
    return reflection_run_execute(run.pk, progress=progress)


def reflection_run_due_now(*, run_id: int) -> int:
    """The run's task was not queued: the next sweep hands it out."""
    return ReflectionRun.objects.filter(pk=run_id, retry_at__isnull=False).update(retry_at=timezone.now())


@dataclass
class _Counts:
    analysed: int = 0
    skipped: int = 0
    failed: int = 0
    warnings_set: int = 0
    warnings_cleared: int = 0


def _previous_snapshot() -> datetime | None:
    """Where "new logs" start: the latest completed run that analysed everything it found."""
    return (
        ReflectionRun.objects.filter(status=ReflectionRunStatus.COMPLETED, cases_skipped=0, case_ids=[])
        .order_by("-snapshot_at")
        .values_list("snapshot_at", flat=True)
        .first()
    )


def _analyse_one(case_id: uuid.UUID, run: ReflectionRun, *, analysis: CaseAnalysisData | None = None,
                 status: str | None = None, verifying: frozenset[str] | None = None) -> str | None:
    """The per-case step of a run, after its analysis is stored: warning flag (and later hooks).

    Called with only (case_id, run) it analyses and stores the case itself. Returns "set" or
    "cleared" when the warning flag moved.
    """
    if analysis is None:
        record = case_analysis_record(
            case_id=case_id, window_days=run.window_days, run=run, now=run.snapshot_at, snapshot_at=run.snapshot_at
        )
        # Verified already by case_analysis_record: no case counts as under verification here.
        suggester.after_analysis(case_id=case_id, analysis=record.analysis, verifying=frozenset())
        return None
    if status is None:
        status = Case.objects.filter(pk=case_id).values_list("status", flat=True).get()
    moved = _apply_warning(case_id=case_id, status=status, analysis=analysis)
    # Improvement loop: verify applied suggestions, propose one for a weak case (may call the LLM).
    suggester.after_analysis(case_id=case_id, analysis=analysis, verifying=verifying)
    return moved


_ANALYSIS_COLUMNS = (
    ("case_id", "uuid"), ("run_id", "int8"), ("window_days", "int2"), ("total_executions", "int4"),
    ("successes", "int4"), ("success_rate", "float8"), ("weighted_success_rate", "float8"),
    ("latency_p95_ms", "float8"), ("slow", "bool"), ("confidence", "text"), ("anomaly_count", "int2"),
    ("result", "jsonb"), ("created_at", "timestamptz"),
)


def _insert_analyses(analyses: Iterable[tuple[uuid.UUID, CaseAnalysisData]],
                     run: ReflectionRun) -> dict[uuid.UUID, CaseAnalysisData]:
    """Store a chunk's analyses as the engine builds them, and return them. On PostgreSQL
    through binary COPY, straight from the dicts, while PostgreSQL takes in the rows already
    sent: a 1,000-row INSERT spends most of its time converting 13,000 parameters on the
    client, and 10,000 model instances cost ~0.5 s more. The engine built every value, so no
    full_clean."""
    stored: dict[uuid.UUID, CaseAnalysisData] = {}
    if connection.vendor != "postgresql":
        stored.update(analyses)
        CaseAnalysis.objects.bulk_create(
            [_record_from(case_id=case_id, analysis=a, run=run, validate=False) for case_id, a in stored.items()],
            batch_size=1_000,
        )
        return stored
    now = timezone.now()
    columns = ", ".join(name for name, _ in _ANALYSIS_COLUMNS)
    with connection.cursor() as cursor:
        with copy_with_orjson(cursor).copy(
            f"COPY {CaseAnalysis._meta.db_table} ({columns}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types([kind for _, kind in _ANALYSIS_COLUMNS])
            for case_id, a in analyses:
                stored[case_id] = a
                copy.write_row([
                    case_id, run.pk, a["window_days"], a["total_executions"], a["successes"],
                    a["success_rate"], a["weighted_success_rate"], a["latency_ms"]["p95"], a["slow"],
                    a["confidence"], len(a["anomalies"]), a, now,
                ])
    return stored


def _drops_by_chance(analyses: dict[uuid.UUID, CaseAnalysisData]) -> dict[uuid.UUID, SuccessRateDrop]:
    """The `success_rate_drop` findings of a chunk that do not survive Benjamini-Hochberg at
    `stats.DROP_FDR` over every case of the chunk. Each case's test runs at 1 %: over 10,000
    stable cases that is ~100 false drops a day, and a drop now sets `warning` and asks for a
    suggestion; among the drops acted on, at most 5 % are expected to be false."""
    drops = {case_id: finding for case_id, a in analyses.items() if (finding := stats.recent_drop(a)) is not None}
    ids = list(drops)
    kept = stats.benjamini_hochberg([float(drops[i]["p_value"]) for i in ids], tests=len(analyses))
    return {case_id: drops[case_id] for n, case_id in enumerate(ids) if n not in kept}


def _analyse_chunk(case_ids: list[uuid.UUID], run: ReflectionRun, counts: _Counts, *,
                   whole_backlog: bool = False) -> None:
    """Analyse claimed cases with set-based queries, store them in bulk, then the per-case step.
    `whole_backlog`: these are the cases of a first run, all in this one chunk."""
    # The queries run here, outside the transaction below (their parallel scan needs that).
    built = engine.analyses_as_built(
        case_ids=case_ids, window_days=run.window_days, now=run.snapshot_at, snapshot_at=run.snapshot_at,
        every_case_with_logs=whole_backlog,
    )
    with transaction.atomic():
        analyses = _insert_analyses(built, run)
        case_services.case_update_metrics_many(
            metrics={case_id: case_metrics(a) for case_id, a in analyses.items() if has_runs(a)}
        )
    statuses = dict(Case.objects.filter(**ids_lookup("pk", case_ids)).values_list("pk", "status"))
    verifying = cases_under_verification()
    chance = _drops_by_chance(analyses)
    for case_id, analysis in analyses.items():
        if case_id in chance:
            # Stored as found; not acted on (no warning, no suggestion for it).
            analysis = {**analysis, "anomalies": [a for a in analysis["anomalies"] if a is not chance[case_id]]}
        try:
            moved = _analyse_one(case_id, run, analysis=analysis, status=statuses.get(case_id), verifying=verifying)
        except Exception:  # one case must not sink the run; it is counted and logged
            logger.exception("reflection run %s: case %s failed", run.pk, case_id)
            counts.failed += 1
            continue
        counts.analysed += 1
        counts.warnings_set += moved == "set"
        counts.warnings_cleared += moved == "cleared"


def _claim_run(run_id: int) -> ReflectionRun | None:
    now = timezone.now()
    # Still "running" past the task timeout means its worker died (kill -9, OOM; django-q2
    # kills a task at Q_TIMEOUT itself): the next delivery (the ORM broker's after Q_RETRY, or
    # the sweeper's ring on Redis, which never re-delivers) takes over, up to `max_attempts`
    # starts. A run executed in-process (`retry_at` empty) is never taken over.
    queued_run = Q(retry_at__isnull=False)
    changed = ReflectionRun.objects.filter(pk=run_id).filter(
        Q(status=ReflectionRunStatus.QUEUED)
        | Q(queued_run, status=ReflectionRunStatus.RUNNING, started_at__lte=task_queue.abandoned_before(now),
            attempts__lt=task_queue.max_attempts())
    ).update(
        status=ReflectionRunStatus.RUNNING, started_at=now, attempts=F("attempts") + 1,
        retry_at=SqlCase(When(queued_run, then=Value(task_queue.lease_end(now))), default=None,
                       output_field=DateTimeField()),
    )
    if changed != 1:
        return None
    # A dead attempt's analyses are redone against the new snapshot: one analysis per case per
    # run; the cases it still holds are this run's to take again.
    CaseAnalysis.objects.filter(run_id=run_id).delete()
    CaseReflectionState.objects.filter(claimed_by_id=run_id).update(claimed_by=None, claimed_at=None)
    return ReflectionRun.objects.get(pk=run_id)


def reflection_run_give_up(*, run_id: int, now: datetime) -> bool:
    """End as failed a run whose worker died on each of its `max_attempts` starts."""
    with transaction.atomic():
        attempts = task_queue.max_attempts()
        gave_up = ReflectionRun.objects.filter(
            pk=run_id, status=ReflectionRunStatus.RUNNING, started_at__lte=task_queue.abandoned_before(now),
            attempts__gte=attempts,
        ).update(status=ReflectionRunStatus.FAILED, finished_at=now, retry_at=None,
                 error=f"WorkerLost: the worker running this run was lost on each of {attempts} attempts.")
        if gave_up:
            CaseReflectionState.objects.filter(claimed_by_id=run_id).update(claimed_by=None, claimed_at=None)
    return bool(gave_up)


def reflection_runs_sweep(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Ring the queue again for runs whose `retry_at` has passed: queued but never started (a
    lost task) or running past `Q_TIMEOUT` (a dead worker; the claim takes it over), and give
    up a run after `max_attempts` starts. Rows are taken by `task_queue.take_due`, so two
    sweeps never ring for one together."""
    now = now or timezone.now()
    counts = {"rung": 0, "given_up": 0}
    for run_id, status, attempts in task_queue.take_due(ReflectionRun, now=now, limit=limit):
        if status not in (ReflectionRunStatus.QUEUED, ReflectionRunStatus.RUNNING):
            ReflectionRun.objects.filter(pk=run_id).update(retry_at=None)  # finished: nothing pending
        elif status == ReflectionRunStatus.RUNNING and attempts >= task_queue.max_attempts():
            counts["given_up"] += reflection_run_give_up(run_id=run_id, now=now)
        else:
            counts["rung"] += task_queue.enqueue(
                RUN_TASK, run_id, if_unavailable=partial(reflection_run_due_now, run_id=run_id)
            )
    return counts


def _analyse_new_logs(run: ReflectionRun, counts: _Counts, progress) -> None:
    """A run's work: find the cases with new logs, then claim, analyse and release them a chunk
    at a time."""
    newest = run_claims.candidate_cases(run)
    candidates = list(newest)
    run.cases_total = len(candidates)
    run.save(update_fields=["cases_total"])
    size = engine.chunk_size()
    whole_backlog = run.since is None and not run.case_ids and len(candidates) <= size
    for offset in range(0, len(candidates), size):
        chunk = candidates[offset:offset + size]
        claimed = run_claims.claim(chunk, run, newest)
        counts.skipped += len(chunk) - len(claimed)
        analysed = False
        try:
            if claimed:
                _analyse_chunk(claimed, run, counts, whole_backlog=whole_backlog)
            analysed = True
        finally:
            run_claims.release(claimed, run, through=_analysed_through(run) if analysed else None)
        if progress is not None:
            progress(len(chunk))


@contextmanager
def _collector_paused():
    """Python's cyclic GC off for a run's loop: a run builds ~20 objects per case, all freed at
    its end, and the collector would trace the growing heap again and again (~0.2 s per 10,000
    cases). Nothing made there holds a cycle for long."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def reflection_run_execute(run_id: int, *, progress=None) -> ReflectionRun:
    """Run a queued run once (a second delivery of the task finds it no longer queued)."""
    if not ReflectionRun.objects.filter(pk=run_id).exists():
        raise NotFound(f"No reflection run with id {run_id}.")
    run = _claim_run(run_id)
    if run is None:
        return ReflectionRun.objects.get(pk=run_id)
    started = time.perf_counter()
    # Full runs stay the settle lag behind now, so their scan sees every log stamped up to the
    # snapshot (module docstring); runs for given cases take everything.
    run.snapshot_at = timezone.now() - (timedelta(0) if run.case_ids else ingest_settle())
    run.since = None if run.case_ids else _previous_snapshot()
    run.save(update_fields=["snapshot_at", "since"])
    counts = _Counts()
    try:
        with _collector_paused():
            _analyse_new_logs(run, counts, progress)
        run.status = ReflectionRunStatus.COMPLETED
    except Exception as error:
        logger.exception("reflection run %s failed", run.pk)
        run.status = ReflectionRunStatus.FAILED
        run.error = f"{type(error).__name__}: {error}"[:2000]
        CaseReflectionState.objects.filter(claimed_by=run).update(claimed_by=None, claimed_at=None)
    run.cases_analysed = counts.analysed
    run.cases_skipped = counts.skipped
    run.cases_failed = counts.failed
    run.warnings_set = counts.warnings_set
    run.warnings_cleared = counts.warnings_cleared
    run.finished_at = timezone.now()
    run.retry_at = None
    elapsed = time.perf_counter() - started
    run.duration_ms = int(elapsed * 1000)
    run.full_clean()
    run.save()
    metrics.observe_analysis(seconds=elapsed, kind="run")
    return run


# The early trigger lives in its own module; re-exported here, where callers look for services.
from reflection.analysis.early_trigger import EARLY_COUNTER_KEY, EARLY_PAUSE_KEY, note_new_logs  # noqa: E402,F401
