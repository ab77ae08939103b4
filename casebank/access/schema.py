"""Teach drf-spectacular our API-key authentication (imported in CasebankConfig.ready)."""
from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "casebank.access.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`; create keys with `manage.py create_api_key NAME` or in admin.",
        }


class BearerApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "casebank.access.authentication.BearerApiKeyAuthentication"
    name = "BearerApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "The same API key as `Bearer <key>`."}
