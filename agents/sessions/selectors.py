"""Reads of sessions and their events."""
from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from agents.models import Session, SessionEvent
from core.errors import NotFound


def session_get(session_id: UUID | str) -> Session:
    session = Session.objects.filter(pk=session_id).first()
    if session is None:
        raise NotFound("Session not found.")
    return session


def session_events_after(*, session_id: UUID | str, after: int, limit: int = 500) -> QuerySet[SessionEvent]:
    # Served by the (session, sequence) unique index.
    return SessionEvent.objects.filter(session_id=session_id, sequence__gt=after).order_by("sequence")[:limit]
