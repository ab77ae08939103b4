"""`/mcp` under WSGI (gunicorn): the MCP endpoint lives on the ASGI server (`config.asgi` sends
`/mcp` there before Django), so the WSGI app only ever refuses it, naming where to connect."""
from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core.asgi_only import refuse_under_wsgi


@csrf_exempt  # MCP clients POST without a CSRF token; the answer is a refusal either way
def mcp_under_wsgi(request: HttpRequest) -> JsonResponse:
    return refuse_under_wsgi(path="/mcp", what="The MCP endpoint", key="mcp")
