"""Answer the probe and scrape paths first, before host validation and the HTTPS redirect.

Kubelet, Docker's HEALTHCHECK and Prometheus reach a pod by its IP over plain HTTP
(`Host: 10.1.2.3:8000`), which `ALLOWED_HOSTS` rightly refuses (400 DisallowedHost) and
`SECURE_SSL_REDIRECT` would send to https. Only these exact paths skip both: they read no
host, set no cookie, need no key and return no secret; every other path keeps Django's checks.
"""
from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

from config import health, metrics

PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/health": health.health,
    "/health/live": health.live,
    "/health/ready": health.ready,
    "/metrics": metrics.export,
}


@sync_and_async_middleware
def probe_middleware(get_response):
    if iscoroutinefunction(get_response):
        # The SSE server (ASGI): probes that query the database run in a thread.
        async def async_middleware(request: HttpRequest) -> HttpResponse:
            view = PROBES.get(request.path_info)
            if view is None:
                return await get_response(request)
            return await sync_to_async(view)(request)

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path_info)
        if view is None:
            return get_response(request)
        return view(request)

    return middleware
