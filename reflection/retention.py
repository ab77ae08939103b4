"""Retention: roll raw logs older than `LOG_RETENTION_DAYS` into daily per-case summaries.

Each UTC day is rolled up and deleted in one transaction, oldest first, so a crash leaves
either the raw logs or their summary, never both and never neither. A day rolled up earlier
that receives back-dated logs later is merged into (counts add up).
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Count, FloatField, Q, Sum
from django.db.models.functions import Cast
from django.utils import timezone

from reflection.engine import stats
from reflection.engine.queries import merge_error
from reflection.models import DailyCaseRollup, ExecutionLog

MIN_RETENTION_DAYS = 30


def retention_days() -> int:
    return max(MIN_RETENTION_DAYS, int(getattr(settings, "LOG_RETENTION_DAYS", MIN_RETENTION_DAYS)))


def _day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    return start, start + timedelta(days=1)


def _days_to_roll(boundary: datetime) -> list[date]:
    moments = ExecutionLog.objects.filter(created_at__lt=boundary).datetimes("created_at", "day", tzinfo=dt_timezone.utc)
    return sorted({moment.date() for moment in moments})


@transaction.atomic
def _roll_up_day(day: date) -> tuple[int, int]:
    start, end = _day_range(day)
    logs = ExecutionLog.objects.filter(created_at__gte=start, created_at__lt=end)
    ms = Cast("execution_time_ms", FloatField())
    totals = {
        row["case_id"]: row
        for row in logs.filter(case__isnull=False)
        .values("case_id")
        .annotate(
            runs=Count("id"),
            successes=Count("id", filter=Q(success=True)),
            latency_sum=Sum(ms),
            latency_sq=Sum(ms * ms),
        )
    }
    histograms: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for row in logs.filter(case__isnull=False).values("case_id", "execution_time_ms").annotate(n=Count("id")):
        bucket = str(stats.histogram_bucket(row["execution_time_ms"]))
        histograms[row["case_id"]][bucket] = histograms[row["case_id"]].get(bucket, 0) + row["n"]
    errors: dict[uuid.UUID, dict[str, dict]] = defaultdict(dict)
    failures = logs.filter(case__isnull=False, success=False).values("case_id", "error_type", "error_message")
    for row in failures.annotate(n=Count("id")):
        merge_error(
            errors[row["case_id"]], row["error_type"] or "unknown",
            stats.message_template(row["error_message"]), row["n"], row["error_message"],
        )
    existing = {
        rollup.case_id: rollup
        for rollup in DailyCaseRollup.objects.select_for_update().filter(day=day, case_id__in=list(totals))
    }
    new: list[DailyCaseRollup] = []
    for case_id, row in totals.items():
        rollup = existing.get(case_id)
        if rollup is None:
            rollup = DailyCaseRollup(case_id=case_id, day=day, runs=0, successes=0, latency_sum_ms=0.0,
                                     latency_sq_sum_ms=0.0, latency_histogram={}, errors={})
            new.append(rollup)
        rollup.runs += row["runs"]
        rollup.successes += row["successes"]
        rollup.latency_sum_ms += float(row["latency_sum"] or 0)
        rollup.latency_sq_sum_ms += float(row["latency_sq"] or 0)
        for bucket, count in histograms[case_id].items():
            rollup.latency_histogram[bucket] = rollup.latency_histogram.get(bucket, 0) + count
        for kind, entry in errors[case_id].items():
            for template, count in entry["templates"].items():
                merge_error(rollup.errors, kind, template, count, entry["example"])
        if case_id in existing:
            rollup.full_clean(exclude=["case"])
            rollup.save()
    for rollup in new:
        rollup.full_clean(exclude=["case"])
    DailyCaseRollup.objects.bulk_create(new, batch_size=1_000)
    deleted, _ = logs.delete()
    return len(totals), deleted


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
