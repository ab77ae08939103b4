"""`GET /api/sessions/{id}/stream`: Server-Sent Events, an async view served by ASGI only (the
WSGI workers answer 421 with the stream's address).

Events come from the `SessionEvent` table, so the stream survives reconnects and process
restarts: a client that reconnects with `Last-Event-ID: n` gets every event after n. Idle
streams send a comment line as keep-alive so proxies do not cut them.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from rest_framework import exceptions

from agents.models import FINISHED_STATUSES, Session
from agents.sessions import selectors
from casebank.access.authentication import ApiKeyAuthentication
from casebank.access.permissions import missing_scopes_message
from casebank.access.scopes import Scope, key_allows
from casebank.models import ApiKey
from core.asgi_only import refuse_under_wsgi

MAX_STREAM_SECONDS = 3600
# The outcome (log, new case) is written just after the session ends; wait this long for it.
OUTCOME_GRACE = timedelta(seconds=10)


def _error(status: int, detail: str, errors: dict | None = None) -> JsonResponse:
    return JsonResponse({"detail": detail, "errors": errors or {}}, status=status)


def _authenticate(request: HttpRequest) -> tuple[ApiKey | None, JsonResponse | None]:
    """(the caller's key, None) or (None, the refusal: 401, or 429 for an address that keeps failing)."""
    try:
        result = ApiKeyAuthentication().authenticate(request)
    except exceptions.Throttled as error:
        refused = _error(429, str(error.detail))
        refused["Retry-After"] = str(int(getattr(error, "wait", None) or 1))  # set in __init__; the stub lacks it
        return None, refused
    except exceptions.AuthenticationFailed as error:
        return None, _unauthenticated(str(error.detail))
    if not result:
        return None, _unauthenticated("Authentication credentials were not provided.")
    return result[1], None


def _unauthenticated(detail: str) -> JsonResponse:
    response = _error(401, detail)
    response["WWW-Authenticate"] = "Token"
    return response


def _format(event_id: int, kind: str, data: dict) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


def _fetch(session_id: str, after: int) -> tuple[list[tuple[int, str, str, dict]], bool]:
    events = [(e.sequence, e.kind, e.phase, e.data) for e in selectors.session_events_after(session_id=session_id, after=after)]
    state = Session.objects.filter(pk=session_id).values("status", "log_id", "finished_at").first()
    done = bool(
        state and state["status"] in FINISHED_STATUSES
        and (state["log_id"] is not None or (state["finished_at"] and timezone.now() - state["finished_at"] > OUTCOME_GRACE))
    )
    return events, done


async def _events(session_id: str, after: int) -> AsyncIterator[str]:
    keepalive = float(settings.SSE_KEEPALIVE_S)
    poll = float(settings.SSE_POLL_S)
    started = last_sent = time.monotonic()
    yield "retry: 2000\n\n"
    while time.monotonic() - started < MAX_STREAM_SECONDS:
        events, done = await sync_to_async(_fetch)(session_id, after)
        for sequence, kind, phase, data in events:
            after = sequence
            last_sent = time.monotonic()
            yield _format(sequence, kind, {"phase": phase, **data})
        if done and not events:
            yield _format(after, "end", {"phase": "done"})
            return
        if time.monotonic() - last_sent >= keepalive:
            last_sent = time.monotonic()
            yield ": ping\n\n"
        if not events:
            await asyncio.sleep(poll)


async def session_stream(request: HttpRequest, session_id: str) -> HttpResponseBase:
    if not isinstance(request, ASGIRequest):
        # Under WSGI Django buffers an async stream in the worker: one open stream would hold it for an hour.
        return refuse_under_wsgi(path=f"/api/sessions/{session_id}/stream", what="The event stream", key="stream")
    if request.method != "GET":
        return _error(405, f'Method "{request.method}" not allowed.')
    api_key, refused = await sync_to_async(_authenticate)(request)
    if refused is not None:
        return refused
    if not key_allows(api_key, Scope.SESSIONS):
        return _error(403, missing_scopes_message([Scope.SESSIONS]))
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or "0"
    if not raw.isdigit() or len(raw) > 9:
        return _error(400, "Invalid input.", {"Last-Event-ID": "Must be a non-negative whole number."})
    # Another key's session answers like an unknown one.
    exists = await selectors.session_visible(api_key=api_key).filter(pk=session_id).aexists()
    if not exists:
        return _error(404, "Session not found.")
    stream = StreamingHttpResponse(_events(str(session_id), int(raw)), content_type="text/event-stream")
    stream["Cache-Control"] = "no-cache"
    stream["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return stream
