"""Admin building blocks shared by every app (reflection and agents import them; never the reverse)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from core.errors import DomainError


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


class HistoryInline(admin.TabularInline):
    """Rows shown under an object and never edited there: versions, audits, events, chunks."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # flatten: a row of fields shown on one line (a tuple in `fields`) is still read-only
        return flatten(self.fields or [])

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def decision_page(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, *, verb: str,
                  note_required: bool, template: str, items_name: str, noun: str) -> tuple[str, TemplateResponse | None]:
    """The note of an approve/reject action, and the confirmation page while it is still owed.

    The page (`admin/decision_confirmation.html`) lists the selection as `items_name`; it comes
    back until the reviewer confirms and, where `note_required`, writes a note."""
    note = request.POST.get("note", "").strip()
    if "apply" in request.POST and not (note_required and not note):
        return note, None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{verb.capitalize()} {queryset.count()} {noun}(s)",
        "verb": verb,
        items_name: queryset,
        "selected_ids": [obj.pk for obj in queryset],
        "action": request.POST.get("action"),
        "note_required": note_required,
        "missing_note": "apply" in request.POST and note_required and not note,
        "opts": model_admin.model._meta,
    }
    return note, TemplateResponse(request, template, context)


def apply_to_each(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, change: Callable[[Any], Any], *,
                  history: Callable[[Any], str], success: str, failure: str,
                  name: Callable[[Any], str] = lambda obj: f"#{obj.pk}") -> None:
    """Run an admin action's service, `change(obj)`, on each selected object.

    Each result goes to the admin history as `history(result)`; one message counts the done
    (`success`, formatted with `done`), another lists the refused (a `DomainError`: its message,
    after `failure` and the object's `name`), so one refusal never stops the rest."""
    done, refused = 0, []
    for obj in queryset:
        try:
            result = change(obj)
        except DomainError as exc:
            refused.append(f"{name(obj)}: {exc.message}")
            continue
        done += 1
        model_admin.log_change(request, result, history(result))
    if done:
        model_admin.message_user(request, success.format(done=done), messages.SUCCESS)
    if refused:
        model_admin.message_user(request, f"{failure}: " + "; ".join(refused), messages.ERROR)
