"""Admin building blocks shared by every app (reflection and agents import them; never the reverse)."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """A screen to read and act on through admin actions, never to edit: queues, logs, audits.

    Changes go through services (approve, reject, retention), so the add, change and delete
    forms stay closed even for superusers."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
