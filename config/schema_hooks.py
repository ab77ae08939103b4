"""drf-spectacular hooks: keep the published schema free of alias routes."""
from __future__ import annotations

from typing import Any


def drop_slash_aliases(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list:
    """Drop a route that only repeats another with a trailing slash added (a tolerance for
    clients, not a second operation), so every operationId stays unique."""
    paths = {path for path, *_ in endpoints}
    return [
        endpoint
        for endpoint in endpoints
        if not (endpoint[0].endswith("/") and endpoint[0].rstrip("/") in paths)
    ]


STREAM_PATH = "/api/sessions/{session_id}/stream"
# What `agents.sessions.services` appends to a session (SessionEvent.kind), and the stream's own end.
STREAM_EVENTS = {
    "phase": "The session moved to a phase (queued, running, plan, select, execute, evaluate, done, failed).",
    "plan": "The plan: its steps and where it came from (a case, the LLM or the heuristic).",
    "select": "Which agents run this iteration.",
    "agent": "One agent finished: `agent`, `ok`, `ms`, `error`.",
    "budget_wait": "The session waits for the LLM request budget.",
    "answer_delta": "A piece of the answer as the LLM writes it: `text`.",
    "results": "The agents' results of an iteration.",
    "evaluation": "The scores and whether the session passed.",
    "logged": "The execution log (and a new case pending review, if any) is written.",
    "end": "Nothing more will come; the stream closes.",
}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def add_session_stream(result: dict, generator: Any = None, request: Any = None, public: bool = False) -> dict:
    """The event stream is a plain async view (`agents.sessions.sse`), which drf-spectacular
    cannot see: describe it here so the schema lists every endpoint."""
    events = "\n".join(f"- `{kind}`: {meaning}" for kind, meaning in STREAM_EVENTS.items())
    result.setdefault("paths", {})[STREAM_PATH] = {"get": {
        "operationId": "sessions_stream",
        "summary": "Server-Sent Events of one of the key's sessions (served by the ASGI server)",
        "description": (
            "`text/event-stream`: each event has an `id` (its sequence; reconnect with `Last-Event-ID` to get "
            "every later event), an `event` type and JSON `data` with the session's `phase`. Idle streams get a "
            f"`: ping` comment line. Needs the `sessions` scope; another key's session is 404.\n\n{events}"
        ),
        "tags": ["sessions"],
        "security": [{"ApiKey": []}],
        "parameters": [
            {"in": "path", "name": "session_id", "required": True, "schema": {"type": "string", "format": "uuid"}},
            {"in": "header", "name": "Last-Event-ID", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"}, "description": "Resume after this event."},
            {"in": "query", "name": "last_event_id", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
             "description": "`Last-Event-ID` for clients that cannot set headers (EventSource)."},
        ],
        "responses": {
            "200": {"description": "The event stream.", "content": {"text/event-stream": {"schema": {
                "type": "string", "example": 'id: 3\nevent: plan\ndata: {"phase":"plan","source":"case"}\n\n'}}}},
            "400": _error("`Last-Event-ID` is not a whole number."),
            "401": _error("No key, or an unknown or revoked one."),
            "403": _error("The key lacks the `sessions` scope."),
            "404": _error("No such session for this key."),
            "421": _error("Asked of the WSGI (API) server: the stream is served by the ASGI server; "
                          "`errors.stream` (and `Location`, when SSE_PUBLIC_URL is set) says where."),
            "429": _error("Too many failed authentications from this address."),
        },
    }}
    return result
