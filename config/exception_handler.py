"""One place that turns every error into `{"detail": ..., "errors": {...}}` with a 4xx."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import DomainError


def _flatten_detail(detail: Any) -> Any:
    if isinstance(detail, list) and len(detail) == 1:
        return _flatten_detail(detail[0])
    if isinstance(detail, dict):
        return {key: _flatten_detail(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten_detail(item) for item in detail]
    return str(detail)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response({"detail": exc.message, "errors": exc.errors}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(
            {"detail": "Invalid input.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST
        )
    # Raised by Django when a view first reads request.body; left to Django it is an HTML 400
    # with a traceback logged at ERROR, for what is only a client sending too much.
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"Request body too large: at most {limit} bytes.", "errors": {}},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent):
        return Response({"detail": str(exc), "errors": {}}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "errors": _flatten_detail(exc.detail)}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"]), "errors": {}}
    return response
