"""What an API key may do, beside what its user may do.

A request needs both: the scope on the key (checked by `RequiredScopes` on every API view,
and by `key_allows` in the non-REST surfaces: OTLP, MCP) and the user's Django permission
where admin asks for one. New keys get `DEFAULT_SCOPES`: enough for an agent to send its runs,
read cases and start sessions, not to edit plans, roll back, review or run reflection.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any


class Scope(enum.StrEnum):
    LOGS_WRITE = "logs:write"  # send execution logs (REST, OTLP, MCP)
    CASES_READ = "cases:read"  # search and read cases, their plans and statistics
    CASES_WRITE = "cases:write"  # create cases, edit plans, roll back, change status
    SESSIONS = "sessions"  # start, read and stream the key's own supervisor sessions
    REFLECTION = "reflection"  # read analyses, run reflection, read suggestions
    REVIEW = "review"  # approve or reject suggestions and cases pending review


ALL_SCOPES: tuple[str, ...] = tuple(scope.value for scope in Scope)
DEFAULT_SCOPES: tuple[str, ...] = (Scope.LOGS_WRITE, Scope.CASES_READ, Scope.SESSIONS)


def default_scopes() -> list[str]:
    """The model field's default (a callable, so no two keys share one list)."""
    return [str(scope) for scope in DEFAULT_SCOPES]


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    """The names in `scopes` that are not scopes, in the order given."""
    return [scope for scope in scopes if scope not in ALL_SCOPES]


def key_allows(api_key: Any, scope: str) -> bool:
    """Whether `api_key` (an `ApiKey`) carries `scope`."""
    return scope in (getattr(api_key, "scopes", None) or ())
