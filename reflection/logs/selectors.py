"""Reads of the execution log: the filtered list behind the API and admin."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet

from reflection.models import ExecutionLog


def log_list(
    *,
    case: UUID | None = None,
    success: bool | None = None,
    error_type: str | None = None,
    session: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[ExecutionLog]:
    logs = ExecutionLog.objects.all()
    if case is not None:
        logs = logs.filter(case_id=case)
    if success is not None:
        logs = logs.filter(success=success)
    if error_type:
        logs = logs.filter(error_type=error_type)
    if session is not None:
        logs = logs.filter(session_id=session)
    if created_after is not None:
        logs = logs.filter(created_at__gte=created_after)
    if created_before is not None:
        logs = logs.filter(created_at__lt=created_before)
    return logs
