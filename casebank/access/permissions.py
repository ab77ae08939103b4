"""The scope check of the REST API: a view names the scope each method needs.

    class CaseList(APIView):
        required_scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}

A single scope (or a tuple of scopes, all needed) applies to every method. The refusal is a
403 that names the missing scope, so a client knows which key to ask for.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import exceptions, permissions

from casebank.access.scopes import key_allows


def scopes_for(view: Any, method: str) -> tuple[str, ...] | None:
    """The scopes `view` needs for `method`; `None` when the view names none."""
    declared = getattr(view, "required_scopes", None)
    if declared is None:
        return None
    if isinstance(declared, Mapping):
        declared = declared.get(method.upper(), declared.get("*", ()))
    if isinstance(declared, str):
        return (declared,)
    return tuple(declared)


class RequiredScopes(permissions.BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        needed = scopes_for(view, request.method)
        if not needed:
            return True
        missing = [scope for scope in needed if not key_allows(request.auth, scope)]
        if missing:
            raise exceptions.PermissionDenied(
                f"This API key lacks the scope {', '.join(repr(s) for s in missing)}."
            )
        return True
