"""Reads of the execution log: the filtered list behind the API and admin."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet

from casebank.access.models import ApiKey
from casebank.access.scopes import Scope, key_allows
from reflection.models import ExecutionLog

# The admin's log screen asks for this; an API key reads every key's logs only with it.
VIEW_ALL_PERMISSION = "reflection.view_executionlog"


def log_owner_filter(*, api_key: ApiKey) -> int | None:
    """The key whose logs `api_key` may read, or `None` when it may read all of them: a key
    with the `reflection` scope whose user may view logs in admin (reviewers, staff)."""
    if key_allows(api_key, Scope.REFLECTION) and api_key.user.has_perm(VIEW_ALL_PERMISSION):
        return None
    return api_key.pk


def log_list(
    *,
    owner: int | None = None,
    case: UUID | None = None,
    success: bool | None = None,
    error_type: str | None = None,
    session: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[ExecutionLog]:
    """`owner`: only the logs of this API key (`log_owner_filter`); `None`: every log."""
    logs = ExecutionLog.objects.all()
    if owner is not None:
        logs = logs.filter(api_key_id=owner)
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
