"""Reads of suggestions for the API and the console."""
from __future__ import annotations

import uuid

from django.db.models import QuerySet

from core.errors import InvalidInput, NotFound
from reflection.models import Suggestion, SuggestionStatus


def suggestion_list(*, case_id: str | None = None, status: str | None = None) -> QuerySet[Suggestion]:
    # Served by suggestion_status_idx / suggestion_case_status_idx.
    suggestions = Suggestion.objects.select_related("reviewed_by", "experiment").defer("evidence")
    errors: dict[str, list[str]] = {}
    if case_id:
        try:
            suggestions = suggestions.filter(case_id=uuid.UUID(str(case_id)))
        except ValueError:
            errors["case"] = ["A case id (UUID)."]
    if status:
        if status not in SuggestionStatus.values:
            errors["status"] = [f"One of {SuggestionStatus.values}."]
        else:
            suggestions = suggestions.filter(status=status)
    if errors:
        raise InvalidInput("Invalid filter.", errors=errors)
    return suggestions.order_by("-created_at", "-id")


def suggestion_get(suggestion_id: int) -> Suggestion:
    # Ids beyond bigint would make PostgreSQL raise instead of finding nothing.
    if not 0 < suggestion_id < 2**63:
        raise NotFound(f"No suggestion with id {suggestion_id}.")
    suggestion = Suggestion.objects.select_related("reviewed_by", "experiment").filter(pk=suggestion_id).first()
    if suggestion is None:
        raise NotFound(f"No suggestion with id {suggestion_id}.")
    return suggestion
