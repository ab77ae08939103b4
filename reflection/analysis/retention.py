"""Retention: roll raw logs older than `LOG_RETENTION_DAYS` into daily per-case summaries.

Each UTC day is rolled up and deleted in one transaction, oldest first, so a crash leaves
either the raw logs or their summary, never both and never neither. The summary is computed
from the very rows the DELETE removed (RETURNING), never by re-running the filter, so a
back-dated log committed meanwhile is either deleted and summarised or left for the next
pass. Runs without a case are summarised too, in one case-less row per day. A day rolled up
earlier that receives back-dated logs later is merged into (counts add up).

Per version (issue #15: an analysis judges the current version): every summary counts runs and
successes per version; a day that mixed versions (an experiment's canary, the day of an edit)
also keeps each version's latency sums, histogram and errors, so that one version's figures
are exact after retention. A one-version day does not repeat them: its totals are its version's.
"""
from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from reflection.analysis.engine import stats
from reflection.analysis.engine.queries import merge_error
from reflection.models import DailyCaseRollup, ExecutionLog

MIN_RETENTION_DAYS = 30


def retention_days() -> int:
    return max(MIN_RETENTION_DAYS, int(settings.LOG_RETENTION_DAYS))


def _day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    return start, start + timedelta(days=1)


def _days_to_roll(boundary: datetime) -> list[date]:
    moments = ExecutionLog.objects.filter(created_at__lt=boundary).datetimes("created_at", "day", tzinfo=dt_timezone.utc)
    return sorted({moment.date() for moment in moments})


# One summary row per (case, day) and group of identical figures: (case_id, case version,
# success, latency bucket, error type, message template, example message, runs, latency sum,
# sum of squares).
_Group = tuple[uuid.UUID | None, int, bool, int, str, str, str, int, float, float]


def _take_day_postgresql(start: datetime, end: datetime) -> list[_Group]:
    """Delete the day's logs and aggregate exactly the deleted rows, in one statement: a log
    committed meanwhile is either in both (deleted and summarised) or in neither."""
    table = ExecutionLog._meta.db_table
    failed = "CASE WHEN success THEN '' ELSE {} END"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH gone AS (
                    DELETE FROM {table} WHERE created_at >= %s AND created_at < %s
                    RETURNING case_id, case_version, success, execution_time_ms::float8 AS ms, error_type,
                              error_message, error_template
                )
                SELECT case_id, case_version, success, {stats.histogram_bucket_sql("ms")} AS bucket,
                       {failed.format("error_type")} AS kind,
                       {failed.format(stats.stored_template_sql())} AS template,
                       {failed.format("min(error_message)")}, COUNT(*), SUM(ms), SUM(ms * ms)
                FROM gone GROUP BY case_id, case_version, success, bucket, kind, template""",
            [start, end],
        )
        return cursor.fetchall()


def _take_day_portable(start: datetime, end: datetime) -> list[_Group]:
    """SQLite: DELETE ... RETURNING gives exactly the deleted rows; grouped here in Python."""
    table = ExecutionLog._meta.db_table
    groups: dict[tuple, list] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE created_at >= %s AND created_at < %s "
            "RETURNING case_id, case_version, success, execution_time_ms, error_type, error_message, error_template",
            [connection.ops.adapt_datetimefield_value(start), connection.ops.adapt_datetimefield_value(end)],
        )
        for case_id, version, success, ms, kind, message, stored in cursor:
            success = bool(success)
            if success:
                template = ""
            elif stored is not None:
                template = stored
            else:
                template = stats.message_template(message)  # cached per message
            key = (case_id, version, success, stats.histogram_bucket(ms), "" if success else kind, template)
            group = groups.setdefault(key, ["" if success else message, 0, 0.0, 0.0])
            if not success and message < group[0]:
                group[0] = message
            group[1] += 1
            group[2] += float(ms)
            group[3] += float(ms) * ms
    return [(*key, *values) for key, values in groups.items()]


def _empty_rollup(case_id: uuid.UUID | None, day: date) -> DailyCaseRollup:
    return DailyCaseRollup(case_id=case_id, day=day, runs=0, successes=0, latency_sum_ms=0.0,
                           latency_sq_sum_ms=0.0, latency_histogram={}, errors={}, versions={})


@transaction.atomic
def _roll_up_day(day: date) -> tuple[int, int]:
    """Delete one day's raw logs and add exactly those to the day's summaries (runs without a
    case go to the day's case-less summary); returns (summaries touched, logs deleted)."""
    start, end = _day_range(day)
    take = _take_day_postgresql if connection.vendor == "postgresql" else _take_day_portable
    groups = take(start, end)
    case_ids = {_as_uuid(row[0]) for row in groups}
    lookup = Q(case_id__in=[case_id for case_id in case_ids if case_id is not None])
    if None in case_ids:
        lookup |= Q(case_id__isnull=True)
    # order_by(): the default ordering joins the case table, and FOR UPDATE refuses outer joins.
    locked = DailyCaseRollup.objects.select_for_update().filter(lookup, day=day).order_by()
    existing = {rollup.case_id: rollup for rollup in locked}
    rollups = {case_id: existing.get(case_id) or _empty_rollup(case_id, day) for case_id in case_ids}
    for rollup in rollups.values():
        _detail_the_only_version(rollup)  # a back-dated run of another version may join it
    deleted = 0
    for case_id, version, success, bucket, kind, template, example, runs, latency_sum, latency_sq in groups:
        rollup = rollups[_as_uuid(case_id)]
        _add_group(vars(rollup), success, bucket, kind, template, example, runs, latency_sum, latency_sq)
        if version is not None:  # runs without a case have no version either
            entry = rollup.versions.setdefault(str(version), {"runs": 0, "successes": 0, **_empty_detail()})
            if "latency_sum_ms" in entry:  # a version counted on a mixed day before the split has none
                _add_group(entry, success, bucket, kind, template, example, runs, latency_sum, latency_sq)
            else:
                entry["runs"] += runs
                entry["successes"] += runs if success else 0
        deleted += runs
    for rollup in rollups.values():
        _undetail_a_single_version(rollup)
        rollup.full_clean(exclude=["case"])
        if rollup.pk is not None:
            rollup.save()
    DailyCaseRollup.objects.bulk_create([r for r in rollups.values() if r.pk is None], batch_size=1_000)
    return len(rollups), deleted


_DETAIL = ("latency_sum_ms", "latency_sq_sum_ms", "latency_histogram", "errors")


def _empty_detail() -> dict:
    return {"latency_sum_ms": 0.0, "latency_sq_sum_ms": 0.0, "latency_histogram": {}, "errors": {}}


def _add_group(summary: dict, success: bool, bucket: int, kind: str, template: str, example: str, runs: int,
               latency_sum: float | None, latency_sq: float | None) -> None:
    """Add one group of identical figures to a summary's fields: a roll-up's (`vars(rollup)`,
    where a model instance keeps its field values) or one version's entry in it."""
    summary["runs"] += runs
    summary["successes"] += runs if success else 0
    summary["latency_sum_ms"] += float(latency_sum or 0)
    summary["latency_sq_sum_ms"] += float(latency_sq or 0)
    histogram = summary["latency_histogram"]
    histogram[str(bucket)] = histogram.get(str(bucket), 0) + runs
    if not success:
        merge_error(summary["errors"], kind or "unknown", template, runs, example)


def _only_version(rollup: DailyCaseRollup) -> dict | None:
    """The version entry of a day that ran one version only (all of its runs), else None."""
    if len(rollup.versions) != 1:
        return None
    [entry] = rollup.versions.values()
    return entry if entry.get("runs") == rollup.runs else None


def _detail_the_only_version(rollup: DailyCaseRollup) -> None:
    """Before merging runs into a stored one-version day: that version's figures are the day's."""
    entry = _only_version(rollup)
    if entry is not None and "latency_sum_ms" not in entry:
        entry.update(latency_sum_ms=rollup.latency_sum_ms, latency_sq_sum_ms=rollup.latency_sq_sum_ms,
                     latency_histogram=dict(rollup.latency_histogram), errors=copy.deepcopy(rollup.errors))


def _undetail_a_single_version(rollup: DailyCaseRollup) -> None:
    """A one-version day keeps only its counts per version: its totals say the rest."""
    entry = _only_version(rollup)
    if entry is not None:
        for name in _DETAIL:
            entry.pop(name, None)


def _as_uuid(value: object) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def logs_roll_up_and_purge(*, now: datetime | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Roll up and delete every whole UTC day older than the retention; returns counts."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=retention_days())
    # Only whole days strictly before the cutoff's day: a day is never half rolled up.
    boundary = datetime.combine(cutoff.date(), time.min, tzinfo=dt_timezone.utc)
    days = _days_to_roll(boundary)
    summaries = deleted = 0
    for day in days:
        day_summaries, day_deleted = _roll_up_day(day)
        summaries += day_summaries
        deleted += day_deleted
        if progress is not None:
            progress(1)
    return {"days": len(days), "summaries": summaries, "deleted": deleted, "before": boundary.isoformat()}
