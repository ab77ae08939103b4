"""The deployed ASGI app itself (`config.asgi:application`, as `serve.sh sse` and `make run` start it)
under a uvicorn process: /mcp is the MCP server, every other path is still Django."""
from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.agents.mcp.test_mcp_auth import INITIALIZE, post
from tests.agents.sessions.test_session_stream import _manage, standalone_database
from tests.bench.support import server


def test_the_uvicorn_app_serves_mcp_beside_django(tmp_path: Path, migrated_template):
    with standalone_database(tmp_path, migrated_template) as url:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
        key = _manage(env, "create_api_key", "asgi").strip().split()[-1]
        with server(kind="uvicorn", workers=1, extra_env={"DATABASE_URL": url}) as (base, _):
            with urllib.request.urlopen(f"{base}/health/live", timeout=10) as response:
                assert response.status == 200  # Django

            status, _, body = post(f"{base}/mcp", json.dumps(INITIALIZE).encode(), {})
            assert status == 401 and json.loads(body)["detail"]

            async def tools() -> list[str]:
                async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as http, \
                        streamable_http_client(f"{base}/mcp", http_client=http) as (read, write), \
                        ClientSession(read, write) as session:
                    await session.initialize()
                    return sorted(tool.name for tool in (await session.list_tools()).tools)

            assert anyio.run(tools) == ["get_case_analysis", "get_case_plan", "log_run", "search_cases"]
