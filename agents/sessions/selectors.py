"""Reads of sessions and their events. A session is read through its owner's API key only."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet

from agents.models import Session, SessionEvent
from casebank.models import ApiKey
from core.errors import NotFound


def session_visible(*, api_key: ApiKey | None) -> QuerySet[Session]:
    """The sessions `api_key` started; none without a key (commands and admin read the model)."""
    if api_key is None:
        return Session.objects.none()
    return Session.objects.filter(api_key=api_key)


def session_get(session_id: UUID | str, *, api_key: ApiKey | None) -> Session:
    # Another key's session answers exactly like an unknown id: no way to probe for ids.
    session = session_visible(api_key=api_key).filter(pk=session_id).first()
    if session is None:
        raise NotFound("Session not found.")
    return session


def session_list(
    *, api_key: ApiKey | None, status: str | None = None, created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Session]:
    """The caller's sessions, newest first (served by session_key_created_idx); the big JSON
    columns are left to the detail view."""
    sessions = session_visible(api_key=api_key).defer("results", "timings_ms", "plan")
    if status:
        sessions = sessions.filter(status=status)
    if created_after is not None:
        sessions = sessions.filter(created_at__gte=created_after)
    if created_before is not None:
        sessions = sessions.filter(created_at__lt=created_before)
    return sessions.order_by("-created_at", "-id")


def session_events_after(*, session_id: UUID | str, after: int, limit: int = 500) -> QuerySet[SessionEvent]:
    # Served by the (session, sequence) unique index.
    return SessionEvent.objects.filter(session_id=session_id, sequence__gt=after).order_by("sequence")[:limit]
