"""Suggestions that wait for the shared LLM budget instead of falling back to rules.

When the per-minute budget has no slot, the suggester stores nothing for the case and marks it
due (`CaseReflectionState.suggestion_due_at` = when a slot frees). A sweep every minute
(`reflection.suggestions.tasks.deferred_suggestions_task`, created by `manage.py setup_schedules`)
retries the due cases (`generation.suggestions_generate_deferred`), oldest first, until the budget is used up again. Rules are kept for when no
LLM is configured or it fails (SPEC 4), never for "not now".

The mark is in the database, so a restart loses nothing; a sweep takes a case with a
conditional UPDATE (a lease), so two sweeps never retry the same case, and a case whose sweep
died is due again when the lease ends.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from uuid import UUID

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
