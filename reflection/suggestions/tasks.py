"""django-q2 tasks of suggestions: alerts (enqueued with `transaction.on_commit`) and the deferred
suggestions sweep; thin, taking ids."""
from __future__ import annotations

from typing import Any

from reflection.models import Suggestion
from reflection.suggestions.notifications import send_alert


def _admin_url(suggestion: Suggestion) -> str:
    return f"/admin/reflection/suggestion/{suggestion.pk}/change/"


def notify_suggestion_created(suggestion_id: int) -> dict[str, Any] | None:
    suggestion = Suggestion.objects.select_related("case").defer("case__embedding").filter(pk=suggestion_id).first()
    if suggestion is None:
        return None
    case = suggestion.case
    rate = suggestion.evidence.get("analysis", {}).get("success_rate")
    rate_text = f"{rate:.0%}" if isinstance(rate, (int, float)) else "n/a"
    return send_alert(
        event="suggestion.created",
        subject=f"New suggestion #{suggestion.pk} for “{case.title}”",
        text=(
            f"Case: {case.title} (v{suggestion.base_version}), success rate {rate_text}.\n"
            f"Source: {suggestion.get_source_display()}, confidence {suggestion.confidence:.0%}.\n\n"
            f"{suggestion.rationale}\n\nExpected effect: {suggestion.expected_effect}\n\n"
            f"Review it: {_admin_url(suggestion)}"
        ),
        payload={
            "suggestion_id": suggestion.pk,
            "case_id": str(case.id),
            "case_title": case.title,
            "base_version": suggestion.base_version,
            "source": suggestion.source,
            "confidence": suggestion.confidence,
            "success_rate": rate,
            "url": _admin_url(suggestion),
        },
    )


def notify_regression(suggestion_id: int) -> dict[str, Any] | None:
    suggestion = Suggestion.objects.select_related("case").defer("case__embedding").filter(pk=suggestion_id).first()
    if suggestion is None:
        return None
    detail = suggestion.verification_detail
    before, after = detail.get("before", {}), detail.get("after", {})
    return send_alert(
        event="suggestion.regressed",
        subject=f"Regression after suggestion #{suggestion.pk} on “{suggestion.case.title}”",
        text=(
            f"Version {suggestion.applied_version} succeeds {after.get('successes')}/{after.get('runs')} times, "
            f"version {suggestion.base_version} succeeded {before.get('successes')}/{before.get('runs')} "
            f"(z = {detail.get('z')}, p = {detail.get('p_value')}).\n"
            f"Roll it back in one click: {_admin_url(suggestion)}"
        ),
        payload={
            "suggestion_id": suggestion.pk,
            "case_id": str(suggestion.case_id),
            "base_version": suggestion.base_version,
            "applied_version": suggestion.applied_version,
            "verification": detail,
            "url": _admin_url(suggestion),
        },
    )


def deferred_suggestions_task() -> dict:
    """Every minute: suggestions that waited for the LLM budget get their turn."""
    from reflection.suggestions.generation import suggestions_generate_deferred

    return suggestions_generate_deferred()
