"""Reflection writes: stored analyses, the warning flag, batch runs, retention.

A run works on a snapshot: it fixes `snapshot_at` when it starts and analyses only logs
ingested up to then, so logs arriving meanwhile go to the next run and nothing is locked.
Two runs never analyse the same case at once: each case is claimed with a conditional
UPDATE on `CaseReflectionState` (the rows we changed are ours) and released when done.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django_q.tasks import async_task
from psycopg.types.json import Jsonb

from casebank import services as case_services
from casebank.errors import NotFound
from casebank.models import Case, CaseStatus
from reflection import engine, suggester
from reflection.models import (
    CaseAnalysis,
    CaseReflectionState,
    ExecutionLog,
    ReflectionRun,
    ReflectionRunStatus,
    ReflectionTrigger,
)
from reflection.retention import logs_roll_up_and_purge  # noqa: F401  (re-exported service)

logger = logging.getLogger(__name__)

REFLECTION_ACTOR = "reflection"
WARNING_BELOW = 0.5
# A claim older than this belongs to a run that died; another run may take the case.
STALE_CLAIM = timedelta(hours=2)
RUN_TASK = "reflection.tasks.reflection_run_task"


# --- one case ---------------------------------------------------------------------------


def _record_from(*, case_id: uuid.UUID, analysis: dict, run: ReflectionRun | None, validate: bool = True) -> CaseAnalysis:
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


def _apply_warning(*, case_id: uuid.UUID, status: str, success_rate: float | None) -> str | None:
    """Set `warning` below 0.5, clear it on recovery; returns "set", "cleared" or None."""
    if success_rate is None:
        return None
    case = Case(pk=case_id)
    if success_rate < WARNING_BELOW and status == CaseStatus.ACTIVE:
        case_services.case_set_status(
            case=case, status=CaseStatus.WARNING, actor=REFLECTION_ACTOR,
            reason=f"success rate {success_rate:.1%} is below {WARNING_BELOW:.0%}",
        )
        return "set"
    if success_rate >= WARNING_BELOW and status == CaseStatus.WARNING:
        case_services.case_set_status(
            case=case, status=CaseStatus.ACTIVE, actor=REFLECTION_ACTOR,
            reason=f"success rate recovered to {success_rate:.1%}",
        )
        return "cleared"
    return None


@transaction.atomic
def case_analysis_record(*, case_id: uuid.UUID | str, window_days: int = 30, run: ReflectionRun | None = None,
                         now: datetime | None = None, snapshot_at: datetime | None = None) -> CaseAnalysis:
    """Analyse one case now, store it as history, update the case's metrics and warning flag."""
    analysis = engine.analyze_case(case_id=case_id, window_days=window_days, now=now, snapshot_at=snapshot_at)
    key = uuid.UUID(analysis["case_id"])
    record = _record_from(case_id=key, analysis=analysis, run=run)
    record.save()
    if analysis["total_executions"]:
        case_services.case_update_metrics(
            case_id=key, success_rate=analysis["success_rate"], run_count=analysis["total_executions"]
        )
    status = Case.objects.filter(pk=key).values_list("status", flat=True).get()
    _apply_warning(case_id=key, status=status, success_rate=analysis["success_rate"])
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
    run.full_clean()
    run.save()
    if enqueue:
        transaction.on_commit(lambda: async_task(RUN_TASK, run.pk))
    return run


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


def _candidate_cases(run: ReflectionRun) -> list[uuid.UUID]:
    if run.case_ids:
        return [uuid.UUID(case_id) for case_id in run.case_ids]
    logs = ExecutionLog.objects.filter(case__isnull=False, ingested_at__lte=run.snapshot_at)
    if run.since is not None:
        logs = logs.filter(ingested_at__gt=run.since)
    newest = dict(logs.values("case_id").annotate(newest=Max("ingested_at")).values_list("case_id", "newest"))
    # A case analysed by a more recent (e.g. early) run since `since` need not be redone.
    done: dict[uuid.UUID, datetime] = {}
    ids = list(newest)
    for offset in range(0, len(ids), 5_000):
        done.update(
            CaseReflectionState.objects.filter(case_id__in=ids[offset:offset + 5_000], analysed_through__isnull=False)
            .values_list("case_id", "analysed_through")
        )
    return [case_id for case_id, moment in newest.items() if case_id not in done or done[case_id] < moment]


def _claim(case_ids: list[uuid.UUID], run: ReflectionRun) -> list[uuid.UUID]:
    CaseReflectionState.objects.bulk_create(
        [CaseReflectionState(case_id=case_id) for case_id in case_ids], ignore_conflicts=True, batch_size=1_000
    )
    now = timezone.now()
    CaseReflectionState.objects.filter(case_id__in=case_ids).filter(
        Q(claimed_by__isnull=True) | Q(claimed_at__lt=now - STALE_CLAIM)
    ).update(claimed_by=run, claimed_at=now)
    return list(CaseReflectionState.objects.filter(case_id__in=case_ids, claimed_by=run).values_list("case_id", flat=True))


def _release(case_ids: list[uuid.UUID], run: ReflectionRun, *, analysed: bool) -> None:
    changes: dict = {"claimed_by": None, "claimed_at": None}
    if analysed:
        changes["analysed_through"] = run.snapshot_at
    CaseReflectionState.objects.filter(case_id__in=case_ids, claimed_by=run).update(**changes)


def _analyse_one(case_id: uuid.UUID, run: ReflectionRun, *, analysis: dict | None = None,
                 record: CaseAnalysis | None = None, status: str | None = None) -> str | None:
    """The per-case step of a run, after its analysis is stored: warning flag (and later hooks).

    Called with only (case_id, run) it analyses and stores the case itself. Returns "set" or
    "cleared" when the warning flag moved.
    """
    if analysis is None:
        record = case_analysis_record(
            case_id=case_id, window_days=run.window_days, run=run, now=run.snapshot_at, snapshot_at=run.snapshot_at
        )
        suggester.after_analysis(case_id=case_id, analysis=record.result)
        return None
    if status is None:
        status = Case.objects.filter(pk=case_id).values_list("status", flat=True).get()
    moved = _apply_warning(case_id=case_id, status=status, success_rate=analysis["success_rate"])
    # Improvement loop: verify applied suggestions, propose one for a weak case (may call the LLM).
    suggester.after_analysis(case_id=case_id, analysis=analysis)
    return moved


_ANALYSIS_COLUMNS = (
    ("case_id", "uuid"), ("run_id", "int8"), ("window_days", "int2"), ("total_executions", "int4"),
    ("successes", "int4"), ("success_rate", "float8"), ("weighted_success_rate", "float8"),
    ("latency_p95_ms", "float8"), ("slow", "bool"), ("confidence", "text"), ("anomaly_count", "int2"),
    ("result", "jsonb"), ("created_at", "timestamptz"),
)


def _insert_analyses(records: list[CaseAnalysis]) -> None:
    """Store a chunk's analyses. On PostgreSQL through binary COPY: a 1,000-row INSERT spends
    most of its time converting 13,000 parameters on the client. Rows get no `pk` back there."""
    if connection.vendor != "postgresql":
        CaseAnalysis.objects.bulk_create(records, batch_size=1_000)
        return
    now = timezone.now()
    columns = ", ".join(name for name, _ in _ANALYSIS_COLUMNS)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            f"COPY {CaseAnalysis._meta.db_table} ({columns}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types([kind for _, kind in _ANALYSIS_COLUMNS])
            for record in records:
                record.created_at = now
                copy.write_row([
                    record.case_id, record.run_id, record.window_days, record.total_executions,
                    record.successes, record.success_rate, record.weighted_success_rate,
                    record.latency_p95_ms, record.slow, record.confidence, record.anomaly_count,
                    Jsonb(record.result), now,
                ])


def _analyse_chunk(case_ids: list[uuid.UUID], run: ReflectionRun, counts: _Counts) -> None:
    """Analyse claimed cases with set-based queries, store them in bulk, then the per-case step."""
    analyses = engine.analyze_cases(
        case_ids=case_ids, window_days=run.window_days, now=run.snapshot_at, snapshot_at=run.snapshot_at
    )
    with transaction.atomic():
        # The engine built every value; full_clean on 10,000 rows would cost more than the insert.
        records = {
            case_id: _record_from(case_id=case_id, analysis=a, run=run, validate=False)
            for case_id, a in analyses.items()
        }
        _insert_analyses(list(records.values()))
        case_services.case_update_metrics_many(
            metrics={
                case_id: (a["success_rate"], a["total_executions"])
                for case_id, a in analyses.items()
                if a["total_executions"]
            }
        )
    statuses = dict(Case.objects.filter(pk__in=case_ids).values_list("pk", "status"))
    for case_id, analysis in analyses.items():
        try:
            moved = _analyse_one(case_id, run, analysis=analysis, record=records[case_id], status=statuses.get(case_id))
        except Exception:  # one case must not sink the run; it is counted and logged
            logger.exception("reflection run %s: case %s failed", run.pk, case_id)
            counts.failed += 1
            continue
        counts.analysed += 1
        counts.warnings_set += moved == "set"
        counts.warnings_cleared += moved == "cleared"


def _claim_run(run_id: int) -> ReflectionRun | None:
    now = timezone.now()
    # Still "running" past the task timeout means its worker died (kill -9, OOM): django-q2
    # hands the task out again after Q_RETRY (> timeout) seconds, and that attempt takes over.
    abandoned = now - timedelta(seconds=settings.Q_CLUSTER.get("timeout", 300))
    changed = ReflectionRun.objects.filter(pk=run_id).filter(
        Q(status=ReflectionRunStatus.QUEUED) | Q(status=ReflectionRunStatus.RUNNING, started_at__lt=abandoned)
    ).update(status=ReflectionRunStatus.RUNNING, started_at=now)
    if changed != 1:
        return None
    # A dead attempt's analyses are redone against the new snapshot: one analysis per case per run.
    CaseAnalysis.objects.filter(run_id=run_id).delete()
    return ReflectionRun.objects.get(pk=run_id)


def reflection_run_execute(run_id: int, *, progress=None) -> ReflectionRun:
    """Run a queued run once (a second delivery of the task finds it no longer queued)."""
    if not ReflectionRun.objects.filter(pk=run_id).exists():
        raise NotFound(f"No reflection run with id {run_id}.")
    run = _claim_run(run_id)
    if run is None:
        return ReflectionRun.objects.get(pk=run_id)
    started = time.perf_counter()
    run.snapshot_at = timezone.now()
    run.since = None if run.case_ids else _previous_snapshot()
    run.save(update_fields=["snapshot_at", "since"])
    counts = _Counts()
    try:
        candidates = _candidate_cases(run)
        run.cases_total = len(candidates)
        run.save(update_fields=["cases_total"])
        for offset in range(0, len(candidates), engine.CHUNK):
            chunk = candidates[offset:offset + engine.CHUNK]
            claimed = _claim(chunk, run)
            counts.skipped += len(chunk) - len(claimed)
            analysed = False
            try:
                if claimed:
                    _analyse_chunk(claimed, run, counts)
                analysed = True
            finally:
                _release(claimed, run, analysed=analysed)
            if progress is not None:
                progress(len(chunk))
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
    run.duration_ms = int((time.perf_counter() - started) * 1000)
    run.full_clean()
    run.save()
    return run


# --- early trigger ----------------------------------------------------------------------

EARLY_COUNTER_KEY = "reflection:new-logs:{}"


def note_new_logs(*, counts: dict[uuid.UUID, int]) -> list[uuid.UUID]:
    """Count new logs per case; cases reaching the threshold get an early run after commit.

    Counters live in the cache (two round trips per batch, whatever its size): a lost
    increment under a race only delays the early run; the daily run covers everything anyway.
    """
    from django.core.cache import cache

    if not counts:
        return []
    threshold = getattr(settings, "REFLECTION_EARLY_TRIGGER_LOGS", 100)
    keys = {EARLY_COUNTER_KEY.format(case_id): case_id for case_id in counts}
    current = cache.get_many(list(keys))
    due: list[uuid.UUID] = []
    updated: dict[str, int] = {}
    for key, case_id in keys.items():
        total = int(current.get(key, 0)) + counts[case_id]
        if total >= threshold:
            due.append(case_id)
            total = 0
        updated[key] = total
    cache.set_many(updated, timeout=7 * 86400)
    if due:
        ids = [str(case_id) for case_id in due]
        transaction.on_commit(lambda: async_task("reflection.tasks.early_reflection_task", ids))
    return due
