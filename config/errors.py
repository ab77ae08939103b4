"""JSON 404/500 for `/api/` (and OTLP's `/v1/`) paths that never reach a DRF view (a URL no pattern matches, a crash
outside the view), so API clients always get `{"detail": ..., "errors": {}}` and never HTML or
a traceback."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults

from config.api_paths import API_PREFIXES


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found.", "errors": {}}, status=404)
    return defaults.page_not_found(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": f"CSRF check failed: {reason}", "errors": {}}, status=403)
    return csrf.csrf_failure(request, reason)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Internal error; it has been logged.", "errors": {}}, status=500)
    return defaults.server_error(request)
