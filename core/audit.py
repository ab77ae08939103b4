"""The admin's history ("History" on every object page) for changes made outside the admin.

An edit through the API is recorded like the same edit in admin (`ModelAdmin.log_change`): a
`LogEntry` by the acting user, so a reviewer reading a case's history sees both.
"""
from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry


def admin_history_record(*, user: Any, obj: Any, message: str, added: bool = False) -> None:
    if user is None or user.pk is None:
        return
    LogEntry.objects.log_actions(
        user_id=user.pk, queryset=[obj], action_flag=ADDITION if added else CHANGE,
        change_message=message[:2000], single_object=True,
    )
