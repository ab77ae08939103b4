"""The MCP server (Model Context Protocol, official `mcp` SDK): case search, plans, run logging
and analyses as tools for any MCP client. Streamable HTTP at `/mcp` on the ASGI server, stdio
through `manage.py mcp_stdio`; docs/mcp.md."""
