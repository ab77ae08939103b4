"""The refusal the WSGI app (gunicorn sync workers) gives paths only the ASGI server serves: the
session event stream and the MCP endpoint. Under WSGI a long-lived response holds a worker, so
these answer at once, before any database work, with a JSON 421 naming where to connect
(`SSE_PUBLIC_URL`, the ASGI server's public address)."""
from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse


def refuse_under_wsgi(*, path: str, what: str, key: str) -> JsonResponse:
    base = str(settings.SSE_PUBLIC_URL or "").rstrip("/")
    where = f"{base}{path}" if base else f"{path} on the ASGI (SSE) server, not the API port"
    response = JsonResponse(
        {"detail": f"{what} is served by the ASGI server only: connect to {where}.", "errors": {key: [where]}},
        status=421,
    )
    if base:
        response["Location"] = f"{base}{path}"
    return response
