"""Who is calling: the API key of an HTTP request (`Bearer` or `Token`), and the scope check
every tool makes.

HTTP reuses the REST API's pieces: `ApiKeyAuthentication` (cached key lookup, the failed-auth
throttle that blocks key guessing) and `ApiKeyTierThrottle` (the key's per-minute budget, shared
with the REST API, so a key cannot double its rate by switching protocol).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from rest_framework import exceptions

from casebank.access.authentication import ApiKeyAuthentication
from casebank.access.scopes import key_allows
from casebank.access.services import api_key_active
from casebank.access.throttling import ApiKeyTierThrottle
from casebank.models import ApiKey

SCHEMES = ("Bearer", "Token")


class ScopeMissing(Exception):
    """The key is valid but may not do this; the message names the scope."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"This API key lacks the scope '{scope}'.")
        self.scope = scope


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str
    headers: dict[str, str]


def authenticate_http(request: HttpRequest) -> ApiKey | Refusal:
    """The request's active key, or why it is refused (401, 429 or 400 for a foreign host)."""
    try:
        request.get_host()  # ALLOWED_HOSTS, as for every Django view (/mcp bypasses Django's handler)
    except DisallowedHost:
        return Refusal(400, "Invalid Host header.", {})
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in {s.lower() for s in SCHEMES} or not key.strip():
        return Refusal(401, "Authentication credentials were not provided: send 'Authorization: Bearer <key>'.",
                       {"WWW-Authenticate": "Bearer"})
    # One code path for both schemes: the REST authentication reads `Token <key>`.
    request.META["HTTP_AUTHORIZATION"] = f"Token {key.strip()}"
    try:
        result = ApiKeyAuthentication().authenticate(request)
    except exceptions.Throttled as error:
        wait = getattr(error, "wait", None)  # set by DRF, missing from its stub
        return Refusal(429, str(error.detail), {"Retry-After": str(int(wait or 60))})
    except exceptions.AuthenticationFailed as error:
        return Refusal(401, str(error.detail), {"WWW-Authenticate": "Bearer"})
    assert result is not None  # the header names the scheme, so authentication answered or raised
    api_key = result[1]
    throttle = ApiKeyTierThrottle()
    request.auth = api_key  # type: ignore[attr-defined]  # what the throttle reads, as on a DRF request
    if not throttle.allow_request(request, None):
        return Refusal(429, "Request was throttled: this API key used up its rate.", {"Retry-After": str(int(throttle.wait()))})
    return api_key


def key_from_plain(plain_key: str) -> ApiKey | None:
    """The active key for a plain key (stdio: checked on every call, so revoking it stops the process's access)."""
    return api_key_active(plain_key=plain_key) if plain_key else None


def require_scope(api_key: ApiKey, scope: str) -> None:
    if not key_allows(api_key, scope):
        raise ScopeMissing(scope)
