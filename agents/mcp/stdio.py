"""The MCP server over stdio, for desktop clients that start it as a process: one API key for
the whole process, checked again on every call (cached for `API_KEY_CACHE_SECONDS`), so revoking
the key stops a running process too."""
from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from agents.mcp.auth import key_from_plain
from agents.mcp.server import build_server
from agents.mcp.threads import off_loop
from casebank.models import ApiKey


def stdio_server(*, plain_key: str) -> MCPServer:
    async def key_of_process(ctx: Context) -> ApiKey:
        api_key = await off_loop(key_from_plain, plain_key=plain_key)
        if api_key is None:
            raise ToolError("Invalid or revoked API key.")
        return api_key

    return build_server(caller=key_of_process)
