"""One URL rule for the whole API, answered before any view.

Routes are declared once, in their documented form (`/api/cases/`, `/api/reflection/analyze`),
and the schema lists them once. A client that adds or drops the trailing slash reaches the same
view: the path is rewritten here rather than redirected, because a redirect loses a POST body
(CommonMiddleware's APPEND_SLASH answers a POST to `/api/cases` with a 500 in DEBUG and a 301
that clients resend as a GET) and only ever worked in one direction. A path that matches no
route either way answers the documented JSON 404 even with DEBUG on, where Django would render
its HTML page.
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

API_PREFIX = "/api/"
# OTLP/HTTP's receiver (/v1/traces) is an API too: JSON answers, the same slash tolerance.
API_PREFIXES = (API_PREFIX, "/v1/")


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def api_paths_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIXES) and not _resolves(path):
            twin = path[:-1] if path.endswith("/") else f"{path}/"
            if not _resolves(twin):
                return JsonResponse({"detail": "Not found.", "errors": {}}, status=404)
            request.path = request.path[: len(request.path) - len(path)] + twin
            request.path_info = twin
        return get_response(request)

    return middleware
