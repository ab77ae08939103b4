"""Which cases a reflection run takes, and how it holds them while it works.

A run takes the cases with logs ingested in (since, snapshot] and newer than the case's own
watermark (an early run may have done them already). It claims them with one conditional
write, the rows it changed being its own, so two runs never analyse a case at once, and
releases them when done, moving the watermark (`reflection.analysis.services` on snapshots and the
settle lag).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from casebank.models import Case
from core.pg_arrays import uuid_array
from reflection.models import CaseReflectionState, ExecutionLog, ReflectionRun

# A claim older than this belongs to a run that died; another run may take the case.
STALE_CLAIM = timedelta(hours=2)


def candidate_cases(run: ReflectionRun) -> dict[uuid.UUID, datetime | str | None]:
    """Cases to analyse, each with the moment `claim` checks the watermark against: the newest
    log's ingested_at, the snapshot for a first run's cases never analysed, None to analyse
    regardless. On PostgreSQL as its own text, never parsed (~0.2 s per 10,000)."""
    if run.case_ids:
        return {uuid.UUID(case_id): None for case_id in run.case_ids}
    if run.since is None and connection.vendor == "postgresql":
        return _first_run_candidates(run)
    return _newer_than_watermark(run)


def _first_run_candidates(run: ReflectionRun) -> dict[uuid.UUID, str]:
    """A run with no complete run before it takes every case with a log in its snapshot: one
    index probe per case (~70 ms per 10,000) instead of grouping every log of the table by
    case (~0.25 s per 1,000,000). Cases an early run analysed compare their newest log with
    their watermark as any run does; the others claim against the snapshot, so a run that
    analysed them after this scan, through a later snapshot, is left the work."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT case_id FROM {CaseReflectionState._meta.db_table} WHERE analysed_through IS NOT NULL"
        )
        watermarked = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            f"""SELECT c.id FROM {Case._meta.db_table} AS c
                CROSS JOIN LATERAL (SELECT FROM {ExecutionLog._meta.db_table} AS l
                                    WHERE l.case_id = c.id AND l.ingested_at <= %s LIMIT 1) AS seen
                WHERE c.id <> ALL(%s::uuid[])""",
            [run.snapshot_at, uuid_array(watermarked)],
        )
        snapshot = run.snapshot_at.isoformat()
        found: dict[uuid.UUID, datetime | str | None] = {row[0]: snapshot for row in cursor.fetchall()}
    if watermarked:
        found.update(_newer_than_watermark(run, only=watermarked))
    return found


def _newer_than_watermark(run: ReflectionRun, *, only: list[uuid.UUID] | None = None) -> dict:
    """One statement: cases with logs ingested in (since, snapshot] after their watermark."""
    logs, state = ExecutionLog._meta.db_table, CaseReflectionState._meta.db_table
    clauses, params = ["case_id IS NOT NULL", "ingested_at <= %s"], [_db_moment(run.snapshot_at)]
    if run.since is not None:
        clauses.append("ingested_at > %s")
        params.append(_db_moment(run.since))
    if only is not None:  # PostgreSQL only
        clauses.append("case_id = ANY(%s::uuid[])")
        params.append(uuid_array(only))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT l.case_id, l.newest{"::text" if connection.vendor == "postgresql" else ""}
                FROM (SELECT case_id, MAX(ingested_at) AS newest FROM {logs}
                      WHERE {" AND ".join(clauses)} GROUP BY case_id) AS l
                LEFT JOIN {state} AS s ON s.case_id = l.case_id
                WHERE s.analysed_through IS NULL OR s.analysed_through < l.newest""",
            params,
        )
        convert = connection.ops.convert_datetimefield_value if connection.vendor != "postgresql" else None
        return {
            (value if isinstance(value, uuid.UUID) else uuid.UUID(value)):
                (convert(newest, None, connection) if convert else newest)
            for value, newest in cursor.fetchall()
        }


def _db_moment(moment: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(moment)


def claim(case_ids: list[uuid.UUID], run: ReflectionRun, newest: dict[uuid.UUID, datetime | str | None]) -> list[uuid.UUID]:
    """Claim the cases no live run holds and whose watermark is still older than the newest log
    the scan saw (`newest`; None claims regardless): a concurrent run that analysed a case
    after our scan has done our work, and must not see it done twice."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One statement, ids and watermarks as arrays: cases with a state row are claimed by a
        # conditional UPDATE, the others by an INSERT that a concurrent claimer's row makes a
        # no-op. (The ORM's bulk_create and IN-lists spent ~0.4 s per 2,000 cases on model
        # instances and on preparing every UUID; an INSERT then an UPDATE wrote each row twice.)
        table = CaseReflectionState._meta.db_table
        newest_array = "{" + ",".join(f'"{newest[c]}"' if newest.get(c) else "NULL" for c in case_ids) + "}"
        with connection.cursor() as cursor:
            cursor.execute(
                f"""WITH m AS MATERIALIZED (SELECT * FROM unnest(%s::uuid[], %s::timestamptz[]) AS m(id, newest)),
                    taken AS (
                        UPDATE {table} AS s SET claimed_by_id = %s, claimed_at = %s FROM m
                        WHERE s.case_id = m.id AND (s.claimed_by_id IS NULL OR s.claimed_at < %s)
                          AND (m.newest IS NULL OR s.analysed_through IS NULL OR s.analysed_through < m.newest)
                        RETURNING s.case_id
                    ), added AS (
                        INSERT INTO {table} (case_id, claimed_by_id, claimed_at)
                        SELECT m.id, %s, %s FROM m WHERE NOT EXISTS (SELECT FROM {table} AS s WHERE s.case_id = m.id)
                        ON CONFLICT DO NOTHING
                        RETURNING case_id
                    )
                    SELECT case_id FROM taken UNION ALL SELECT case_id FROM added""",
                [uuid_array(case_ids), newest_array, run.pk, now, now - STALE_CLAIM, run.pk, now],
            )
            ours = {row[0] for row in cursor.fetchall()}
        return [case_id for case_id in case_ids if case_id in ours]
    CaseReflectionState.objects.bulk_create(
        [CaseReflectionState(case_id=case_id) for case_id in case_ids], ignore_conflicts=True, batch_size=1_000
    )
    # One write transaction (SQLite takes the write lock at BEGIN): no run releases a case
    # between reading its watermark and claiming it.
    with transaction.atomic():
        watermarks = dict(CaseReflectionState.objects.filter(case_id__in=case_ids).values_list("case_id", "analysed_through"))
        due = [c for c in case_ids if newest.get(c) is None or watermarks.get(c) is None or watermarks[c] < newest[c]]
        CaseReflectionState.objects.filter(case_id__in=due).filter(
            Q(claimed_by__isnull=True) | Q(claimed_at__lt=now - STALE_CLAIM)
        ).update(claimed_by=run, claimed_at=now)
    return list(CaseReflectionState.objects.filter(case_id__in=case_ids, claimed_by=run).values_list("case_id", flat=True))


def release(case_ids: list[uuid.UUID], run: ReflectionRun, *, through: datetime | None) -> None:
    """Let the cases go; `through` (None when the analysis failed) becomes their watermark."""
    if connection.vendor == "postgresql":
        # `= ANY(array)`, not the ORM's `IN (SELECT unnest(...))`: planned against the claim
        # column's stale statistics (all NULL until this run), the semi-join became a nested
        # loop comparing every claimed row with every id, 5 s for 10,000 cases.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {CaseReflectionState._meta.db_table}
                    SET claimed_by_id = NULL, claimed_at = NULL, analysed_through = COALESCE(%s, analysed_through)
                    WHERE case_id = ANY(%s::uuid[]) AND claimed_by_id = %s""",
                [through, uuid_array(case_ids), run.pk],
            )
        return
    changes: dict = {"claimed_by": None, "claimed_at": None}
    if through is not None:
        changes["analysed_through"] = through
    CaseReflectionState.objects.filter(case_id__in=case_ids, claimed_by=run).update(**changes)


