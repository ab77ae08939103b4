"""The scope check of the REST API: a view names the scope each method needs.

    class CaseList(APIView):
        required_scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}

A single scope (or a tuple of scopes, all needed) applies to every method; `()` lets any key
in. The refusal is a 403 that names the missing scope, so a client knows which key to ask for.

Deny by default: a view that declares no `required_scopes`, or a method missing from its
mapping, is refused to every key (a new endpoint is closed until someone decides who may use
it; tests/casebank/access/test_scope_walk.py fails on such a view before it ships).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import exceptions, permissions

from casebank.access.scopes import key_allows


def scopes_for(view: Any, method: str) -> tuple[str, ...] | None:
    """The scopes `view` needs for `method`; `None` when the view names none for it."""
    declared = getattr(view, "required_scopes", None)
    if isinstance(declared, Mapping):
        declared = declared.get(method.upper(), declared.get("*"))
    if declared is None:
        return None
    if isinstance(declared, str):
        return (declared,)
    return tuple(declared)


UNDECLARED = "This endpoint declares no API-key scope for {method}, so no key may use it."


class RequiredScopes(permissions.BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        method = request.method.upper()
        if not hasattr(view, method.lower()):
            return True  # the view answers 405 itself
        if method == "OPTIONS":
            # The description of the view, no data: any key that could use some method of it.
            return getattr(view, "required_scopes", None) is not None
        needed = scopes_for(view, "GET" if method == "HEAD" else method)
        if needed is None:
            raise exceptions.PermissionDenied(UNDECLARED.format(method=method))
        missing = [scope for scope in needed if not key_allows(request.auth, scope)]
        if missing:
            raise exceptions.PermissionDenied(missing_scopes_message(missing))
        return True


def missing_scopes_message(missing: list[str]) -> str:
    """The 403's detail, also used by the surfaces outside DRF (the event stream)."""
    return f"This API key lacks the scope {', '.join(repr(str(s)) for s in missing)}."


def require_permission(user: Any, permission: str, doing: str) -> None:
    """The Django permission admin asks for before the same change; a 403 naming it."""
    if user is None or not user.has_perm(permission):
        raise exceptions.PermissionDenied(f"{doing} needs the {permission} permission (as in admin).")
