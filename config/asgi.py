"""The ASGI app (uvicorn, `scripts/serve.sh sse`): Django, with `/mcp` sent to the MCP server
(`agents.mcp.http`) before Django sees it. Lifespan events go to the MCP app, which starts the
SDK's task group there; Django has no lifespan."""
import os
from collections.abc import Awaitable, Callable

from django.core.asgi import get_asgi_application
from starlette.types import Receive, Scope, Send

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

from agents.mcp.http import PATH, McpHttpApp  # noqa: E402  (needs the apps loaded above)

ASGIApp = Callable[..., Awaitable[None]]


def route_mcp(django_app: ASGIApp, mcp_app: ASGIApp) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await mcp_app(scope, receive, send)
            return
        path = scope.get("path", "")
        target = mcp_app if path == PATH or path.startswith(PATH + "/") else django_app
        await target(scope, receive, send)

    return app


application = route_mcp(django_application, McpHttpApp())
