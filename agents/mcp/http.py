"""`/mcp`: Streamable HTTP on the ASGI server, authenticated on every request.

Stateless with JSON responses: every POST carries its own key and is answered whole, so any
replica (or any of several uvicorn workers) can answer any request, and there is no session
state to lose when a process restarts; the tools need no server-to-client requests. The WSGI
app answers `/mcp` with a JSON 421 naming this server (`views.py`).
"""
from __future__ import annotations

import io
import logging
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents.mcp.auth import Refusal, authenticate_http
from agents.mcp.server import build_server
from agents.mcp.threads import off_loop
from casebank.models import ApiKey

logger = logging.getLogger(__name__)

PATH = "/mcp"
# The largest tool call is a log_run with a 10,000-character error message; the SDK's default is 4 MiB.
MAX_BODY_BYTES = 256 * 1024
# JSON-RPC's range for server-defined errors (-32000..-32099).
JSONRPC_REFUSED = -32001


async def _key_of_request(ctx: Context) -> ApiKey:
    request = ctx.request_context.request
    api_key = getattr(getattr(request, "state", None), "api_key", None)
    if not isinstance(api_key, ApiKey):  # only reachable if the app were mounted without McpHttpApp
        raise ToolError("Not authenticated.")
    return api_key


class McpHttpApp:
    """ASGI app for `/mcp`: the caller's key is checked (401/429 JSON otherwise) and handed to the
    tools in the request's state, then the SDK's Streamable HTTP app answers."""

    def __init__(self) -> None:
        self.server = build_server(caller=_key_of_request)
        self.app: ASGIApp = self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=MAX_BODY_BYTES,
            # Host checks are Django's ALLOWED_HOSTS (auth.authenticate_http); the key travels in a
            # header a foreign page cannot set without a CORS preflight this server never grants.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # starts the SDK's task group the requests run in
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # MCP has no WebSocket transport here: policy violation
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["method"] != "POST":
            # Stateless: no stream to open with GET (it would hang open), no session to DELETE.
            await _refusal(Refusal(405, f'Method "{scope["method"]}" not allowed: send JSON-RPC with POST.',
                                   {"Allow": "POST"}))(scope, receive, send)
            return
        try:
            outcome = await off_loop(authenticate_http, request=ASGIRequest(scope, io.BytesIO()))
        except DatabaseError:  # JSON like every other answer, never the server's plain-text 500
            logger.exception("MCP authentication failed on the database")
            outcome = Refusal(503, "The database is unavailable; retry shortly.", {"Retry-After": "5"})
        if isinstance(outcome, Refusal):
            await _refusal(outcome)(scope, receive, send)
            return
        body = await _read_body(scope, receive)
        if body is None:
            await _refusal(Refusal(413, f"Request body too large: at most {MAX_BODY_BYTES // 1024} KiB.", {}))(
                scope, receive, send)
            return
        state: dict[str, Any] = {**scope.get("state", {}), "api_key": outcome}
        await self.app({**scope, "state": state}, _replay(body, receive), send)


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The whole request body, or None past MAX_BODY_BYTES (declared or sent). The SDK has a limit
    of its own, but answers it in plain text; every refusal here is JSON."""
    declared = Headers(scope=scope).get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return bytes(body)
        body.extend(message.get("body", b""))
        if len(body) > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # only a disconnect can follow
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _refusal(refusal: Refusal) -> JSONResponse:
    # The API's error shape, plus a JSON-RPC error envelope: MCP clients show its message (the SDK's
    # client otherwise reports only "Server returned an error response").
    body = {"detail": refusal.detail, "errors": {}, "jsonrpc": "2.0", "id": None,
            "error": {"code": JSONRPC_REFUSED, "message": refusal.detail}}
    return JSONResponse(body, status_code=refusal.status, headers=refusal.headers)
