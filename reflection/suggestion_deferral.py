"""Suggestions that wait for the shared LLM budget instead of falling back to rules.

When the per-minute budget has no slot, the suggester stores nothing for the case and marks it
due (`CaseReflectionState.suggestion_due_at` = when a slot frees). A sweep every minute
(`reflection.tasks.deferred_suggestions_task`, created by `manage.py setup_schedules`) retries
the due cases, oldest first, until the budget is used up again. Rules are kept for when no
LLM is configured or it fails (SPEC 4), never for "not now".

The mark is in the database, so a restart loses nothing; a sweep takes a case with a
conditional UPDATE (a lease), so two sweeps never retry the same case, and a case whose sweep
died is due again when the lease ends.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from reflection.models import CaseReflectionState

logger = logging.getLogger(__name__)

# A sweep's claim on a case: longer than one suggestion takes (LLM attempts and pauses).
LEASE = timedelta(minutes=10)
# A sweep starts no new case after this long, so that sweeps scheduled every minute do not
# pile up and one task stays far below django-q2's timeout.
SWEEP_SECONDS = 50.0


def suggestion_defer(*, case_id: UUID | str, retry_after: float | None) -> datetime:
    """Mark the case's suggestion as waiting for the LLM budget until `retry_after` seconds from now."""
    due = timezone.now() + timedelta(seconds=max(retry_after or 0.0, 1.0))
    if not CaseReflectionState.objects.filter(case_id=case_id).update(suggestion_due_at=due):
        CaseReflectionState.objects.bulk_create([CaseReflectionState(case_id=case_id)], ignore_conflicts=True)
        CaseReflectionState.objects.filter(case_id=case_id).update(suggestion_due_at=due)
    return due


def suggestion_deferral_clear(*, case_id: UUID | str) -> None:
    """The case got its answer (a suggestion, or a reason for none): nothing waits any more."""
    CaseReflectionState.objects.filter(case_id=case_id, suggestion_due_at__isnull=False).update(suggestion_due_at=None)


def suggestions_generate_deferred(*, now: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """Retry due cases, oldest first; stop when the budget says "not now" again.

    Returns counts: `created` suggestions, `deferred` again, `none` (no longer eligible, already
    pending, case changed) and `due` (cases found due).
    """
    from reflection.suggester import suggestion_generate_result

    now = now or timezone.now()
    # More than the per-minute budget cannot get an LLM call in this sweep anyway.
    limit = limit or max(settings.LLM_CALLS_PER_MINUTE, 1)
    due = list(
        CaseReflectionState.objects.filter(suggestion_due_at__lte=now)
        .order_by("suggestion_due_at")
        .values_list("case_id", "suggestion_due_at")[:limit]
    )
    counts = {"due": len(due), "created": 0, "deferred": 0, "none": 0}
    started = time.monotonic()
    for case_id, due_at in due:
        if time.monotonic() - started > SWEEP_SECONDS:
            break
        taken = CaseReflectionState.objects.filter(case_id=case_id, suggestion_due_at=due_at).update(
            suggestion_due_at=timezone.now() + LEASE
        )
        if taken != 1:
            continue  # another sweep has it, or it was answered meanwhile
        try:
            result = suggestion_generate_result(case_id=case_id)
        except Exception:  # one case must not stop the sweep; the lease makes it due again
            logger.exception("deferred suggestion for case %s failed", case_id)
            continue
        if result.deferred_until is not None:
            counts["deferred"] += 1
            break  # the budget is used up: the rest stay due for the next sweep
        counts["created" if result.suggestion is not None else "none"] += 1
    return counts
