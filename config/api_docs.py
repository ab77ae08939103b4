"""The API description is not public: a key (`Authorization: Token`) or a signed-in staff
session is needed, so only `/health` and `/metrics` answer strangers.

A browser without a session is sent to the admin sign-in and back; the Swagger page then
fetches the schema with the same session cookie.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.authentication import ApiKeyAuthentication


class IsKeyHolderOrStaff(BasePermission):
    message = "The API description needs an API key ('Authorization: Token <key>') or a staff session."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        return request.auth is not None or user.is_staff  # a key, or an admin session


class _Protected(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsKeyHolderOrStaff]
    # Any key: the description of the API holds no data (tests/casebank/access/test_scope_walk.py).
    required_scopes = ()

    def handle_exception(self, exc: Exception) -> Response:
        # These views render YAML or an HTML page; their errors (401, 403, 405) are the API's
        # JSON like everywhere else under /api/.
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response


class SchemaView(_Protected, SpectacularAPIView):
    pass


class DocsView(_Protected, SpectacularSwaggerView):
    pass


_docs = DocsView.as_view(url_name="api-schema")


def docs(request: HttpRequest) -> HttpResponse:
    signed_in = request.user.is_authenticated and request.user.is_staff
    if not signed_in and "HTTP_AUTHORIZATION" not in request.META:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    return _docs(request)
