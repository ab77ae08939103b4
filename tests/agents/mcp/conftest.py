"""The MCP server under test: the project's ASGI app (`config.asgi`: Django with `/mcp` routed to
the MCP server) served by a real uvicorn on a free port, in a thread of the test process so it
reads the test database; clients are the SDK's own (`ClientSession` over Streamable HTTP)."""
from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
import pytest
import uvicorn
from django.db import connection
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from casebank.access import services as access_services
from casebank.models import ApiKey
from tests.bench.support import free_port

T = TypeVar("T")


@pytest.fixture
def mcp_url(transactional_db, monkeypatch) -> Iterator[str]:
    """`http://127.0.0.1:<port>/mcp` on a fresh app (the SDK's session manager runs once per app)."""
    from agents.mcp.http import McpHttpApp
    from config.asgi import django_application, route_mcp

    # Tool calls run on worker threads, each with its own connection: close them after every call
    # (as `serve.sh sse` runs it), so none outlives the test database.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        route_mcp(django_application, McpHttpApp()), host="127.0.0.1", port=port, log_level="warning",
        lifespan="on", access_log=False,
    ))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(15)


@pytest.fixture
def make_key(transactional_db) -> Callable[..., str]:
    """A new API key's plain value; `scopes` replaces the default ones."""
    made = iter(range(1000))

    def make(*, scopes: list[str] | None = None) -> str:
        api_key, plain = access_services.api_key_create(name=f"mcp-client-{next(made)}")
        if scopes is not None:
            ApiKey.objects.filter(pk=api_key.pk).update(scopes=scopes)
        return plain

    return make


def with_session(url: str, key: str | None, use: Callable[[ClientSession], Awaitable[T]], *,
                 scheme: str = "Bearer") -> T:
    """Connect with the SDK's client, initialise, and run `use(session)`."""
    headers = {"Authorization": f"{scheme} {key}"} if key else {}

    async def main() -> T:
        async with create_mcp_http_client(headers=headers) as http, \
                streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await use(session)

    return anyio.run(main)


def call(url: str, key: str, tool: str, arguments: dict[str, Any]) -> Any:
    """One tool call in its own session; the SDK's `CallToolResult`."""
    return with_session(url, key, lambda session: session.call_tool(tool, arguments))


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(part.text for part in result.content)
