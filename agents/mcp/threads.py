"""Django ORM work from the MCP server's event loop."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def _with_fresh_connections(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    # What Django's request handler does around a request: drop connections past CONN_MAX_AGE
    # (serve.sh runs the ASGI server at 0, so each call closes its connection) or broken.
    close_old_connections()
    try:
        return fn(**kwargs)
    finally:
        close_old_connections()


async def off_loop(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `fn(**kwargs)` in a worker thread, never blocking the loop. Not thread-sensitive:
    each call is one short unit of work on its thread's own connection, and calls from many
    clients then run side by side instead of queueing behind one thread (a search embeds its
    query, tens of milliseconds of CPU)."""
    return await sync_to_async(_with_fresh_connections, thread_sensitive=False)(fn, kwargs)
