"""`Authorization: Token <key>` (or `Bearer <key>` where a view takes it) against hashed per-client API keys."""
from __future__ import annotations

from typing import Any, NoReturn

from rest_framework import authentication, exceptions

from casebank.access.services import api_key_active
from casebank.access.throttling import FailedAuthenticationThrottle
from casebank.models import ApiKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Any) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(f"Invalid Authorization header: use '{self.keyword} <key>'.")
        throttle = FailedAuthenticationThrottle()

        def refuse_if_blocked() -> None:
            if throttle.blocked(request):
                raise exceptions.Throttled(throttle.wait(), detail="Too many failed authentications from this address.")

        try:
            key = header[1].decode()
        except UnicodeError:
            self._failed(request, throttle, "Invalid API key.")
        # Only a key missing from the key cache costs a lookup, so only then is the address checked.
        api_key = api_key_active(plain_key=key, on_miss=refuse_if_blocked)
        if api_key is None:
            self._failed(request, throttle, "Invalid or revoked API key.")
        return api_key.user, api_key

    @staticmethod
    def _failed(request: Any, throttle: FailedAuthenticationThrottle, message: str) -> NoReturn:
        if not throttle.record_failure(request):
            raise exceptions.Throttled(throttle.wait(), detail="Too many failed authentications from this address.")
        raise exceptions.AuthenticationFailed(message)

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


class BearerApiKeyAuthentication(ApiKeyAuthentication):
    """The same keys as `Authorization: Bearer <key>`, the form OpenTelemetry exporters and MCP
    clients are usually configured with; views opt in next to `ApiKeyAuthentication`."""

    keyword = "Bearer"
