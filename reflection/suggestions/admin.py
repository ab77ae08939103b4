"""The approval console: the pending-suggestion queue, decisions, verification and rollback.

An approved suggestion's verdict is its experiment's (`reflection.experiments.admin` has the
full page); without one (experiments off), the before/after comparison's.

Admin actions only call `reflection.suggestions.services`; each needs `approve_suggestion`,
asks for a note on an intermediate page, reports counts, and logs the change (`log_change`)
next to the service's own audit row.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from core.admin_support import HistoryInline, ReadOnlyAdminMixin, apply_to_each, decision_page
from core.errors import DomainError
from reflection.experiments.rendering import status_badge, verdict_html
from reflection.experiments.services import ROLLBACK_FROM
from reflection.logs.admin import version_with_logs_html
from reflection.models import (
    Experiment,
    LLMCall,
    PendingSuggestion,
    Suggestion,
    SuggestionDecision,
    SuggestionStatus,
    Verification,
)
from reflection.suggestions import services
from reflection.suggestions.rendering import changes_html, evidence_html, plan_diff_html, verification_badge

APPROVE_PERMISSION = "reflection.approve_suggestion"


class DecisionInline(HistoryInline):
    model = SuggestionDecision
    fields = ["created_at", "action", "from_status", "to_status", "actor_name", "case_version", "note"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SuggestionAdminBase(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_select_related = ["case"]
    raw_id_fields = ["case"]
    search_fields = ["=id", "=case__id", "case__title"]
    inlines = [DecisionInline]
    readonly_fields = [
        "case_link",
        "base_version_links",
        "applied_version_links",
        "base_version",
        "status_view",
        "source",
        "confidence_pct",
        "rationale",
        "changes_list",
        "expected_effect",
        "plan_diff",
        "evidence_view",
        "model",
        "tokens",
        "fallback_reason",
        "created_at",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "stale_reason",
        "applied_version",
        "experiment_link",
        "verification_view",
        "rolled_back_version",
    ]
    fieldsets = [
        ("Proposal", {"fields": ["case_link", "base_version_links", "status_view", "source", "confidence_pct",
                                 "rationale", "changes_list", "expected_effect"]}),
        ("Current vs proposed plan", {"fields": ["plan_diff"]}),
        ("Evidence", {"fields": ["evidence_view"]}),
        ("Review", {"fields": ["reviewed_by", "reviewed_at", "review_note", "stale_reason", "applied_version_links",
                               "experiment_link", "verification_view", "rolled_back_version"]}),
        ("Provenance", {"fields": ["model", "tokens", "fallback_reason", "created_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("case__embedding").select_related("experiment")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        # get_object, like Django's own view: a malformed or unknown id is None (then Django
        # redirects with "doesn't exist"), never a ValueError from filtering an integer pk by "abc".
        suggestion = self.get_object(request, unquote(object_id))
        can_approve = self.has_approve_permission(request)
        extra = {
            # The template shows the decision buttons only to those who may press them.
            "can_approve": can_approve,
            "offer_rollback": bool(suggestion and can_approve and _can_roll_back(suggestion)),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    # -- columns ------------------------------------------------------------------------

    @admin.display(description="Case", ordering="case__title")
    def case_link(self, suggestion: Suggestion) -> str:
        return format_html(
            '<a href="/admin/casebank/case/{}/change/">{}</a> <span style="color:#888">now v{}</span>',
            suggestion.case_id, suggestion.case.title[:80], suggestion.case.version,
        )

    @admin.display(description="Made against")
    def base_version_links(self, suggestion: Suggestion) -> str:
        return version_with_logs_html(suggestion.case_id, suggestion.base_version)

    @admin.display(description="Applied as")
    def applied_version_links(self, suggestion: Suggestion) -> str:
        return version_with_logs_html(suggestion.case_id, suggestion.applied_version)

    @admin.display(description="Success rate")
    def success_rate(self, suggestion: Suggestion) -> str:
        rate = (suggestion.evidence.get("analysis") or {}).get("success_rate")
        return f"{rate:.1%}" if isinstance(rate, (int, float)) else "—"

    @admin.display(description="Top error")
    def top_error(self, suggestion: Suggestion) -> str:
        errors = suggestion.evidence.get("common_errors") or []
        if not errors:
            return "—"
        return f"{errors[0].get('error_type') or '(none)'} ({errors[0].get('percentage')}%)"

    @admin.display(description="Confidence", ordering="confidence")
    def confidence_pct(self, suggestion: Suggestion) -> str:
        return f"{suggestion.confidence:.0%}"

    @admin.display(description="Changes")
    def changes_list(self, suggestion: Suggestion) -> str:
        return changes_html(suggestion.changes)

    @admin.display(description="Diff")
    def plan_diff(self, suggestion: Suggestion) -> str:
        return plan_diff_html(suggestion.current_plan, suggestion.revised_plan, base_version=suggestion.base_version)

    @admin.display(description="Evidence")
    def evidence_view(self, suggestion: Suggestion) -> str:
        return evidence_html(suggestion.evidence)

    @admin.display(description="Tokens in/out, cost")
    def tokens(self, suggestion: Suggestion) -> str:
        return f"{suggestion.tokens_in} / {suggestion.tokens_out}, ${suggestion.cost_usd:.4f}"

    @admin.display(description="Verification", ordering="verification")
    def verification_view(self, suggestion: Suggestion) -> str:
        experiment = _experiment_of(suggestion)
        if experiment is not None:
            return verdict_html(experiment)
        return verification_badge(suggestion.verification, suggestion.verification_detail)

    @admin.display(description="Experiment")
    def experiment_link(self, suggestion: Suggestion) -> str:
        experiment = _experiment_of(suggestion)
        if experiment is None:
            return "—"
        return format_html('<a href="/admin/reflection/experiment/{}/change/">#{}</a>: v{} on {} of traffic beside v{} · {}',
                           experiment.pk, experiment.pk, experiment.candidate_version,
                           f"{experiment.candidate_share:.0%}", experiment.base_version, status_badge(experiment))

    @admin.display(description="Status", ordering="status")
    def status_view(self, suggestion: Suggestion) -> str:
        experiment = _experiment_of(suggestion)
        if experiment is None or suggestion.status != SuggestionStatus.APPROVED:
            return suggestion.get_status_display()
        return format_html("{} · {}", suggestion.get_status_display(), status_badge(experiment))

    # -- decisions ----------------------------------------------------------------------

    def _decide(self, request: HttpRequest, queryset: QuerySet, *, verb: str, note_required: bool) -> HttpResponse | None:
        """Show the note page first; on `apply`, run the service for each selected suggestion."""
        note, page = decision_page(self, request, queryset, verb=verb, note_required=note_required,
                                   template="admin/reflection/suggestion_decision.html", items_name="suggestions", noun="suggestion")
        if page is not None:
            return page
        done, stale, refused = 0, [], []
        service = services.suggestion_approve if verb == "approve" else services.suggestion_reject
        for suggestion in queryset.select_related("case"):
            try:
                result = service(suggestion=suggestion, acting_user=request.user, note=note)
            except DomainError as exc:
                refused.append(f"#{suggestion.pk}: {exc.message}")
                continue
            if result.status == SuggestionStatus.STALE:
                stale.append(f"#{result.pk}: {result.stale_reason}")
                self.log_change(request, result, f"Marked stale on approval: {result.stale_reason}")
                continue
            done += 1
            experiment = _experiment_of(result) if verb == "approve" else None
            if experiment is not None:
                message = (f"Approved: experiment #{experiment.pk} serves v{experiment.candidate_version} "
                           f"to {experiment.candidate_share:.0%} of traffic")
            else:
                message = f"{verb.capitalize()}d" + (f" as case v{result.applied_version}" if result.applied_version else "")
            self.log_change(request, result, message + (f": {note}" if note else ""))
        if done:
            self.message_user(request, f"{done} suggestion(s) {verb}d.", messages.SUCCESS)
        if stale:
            self.message_user(request, "Stale, not applied (the case changed since): " + "; ".join(stale), messages.WARNING)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.ERROR)
        return None

    @admin.action(description="Approve selected suggestions (starts experiments)…", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, verb="approve", note_required=False)

    @admin.action(description="Reject selected suggestions (with a note)…", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, verb="reject", note_required=True)


@admin.register(PendingSuggestion)
class PendingSuggestionAdmin(SuggestionAdminBase):
    """The review queue: pending suggestions only, oldest first."""

    list_display = ["id", "case_link", "base_version", "source", "success_rate", "top_error", "confidence_pct", "created_at"]
    list_filter = ["source"]
    ordering = ["created_at"]
    actions = ["approve_selected", "reject_selected"]
    change_form_template = "admin/reflection/suggestion_change_form.html"


@admin.register(Suggestion)
class SuggestionAdmin(SuggestionAdminBase):
    """Every suggestion with its outcome and experiment; rollback asks for a confirmation and a note."""

    list_display = ["id", "case_link", "status_view", "source", "base_version", "applied_version", "verification_view", "created_at"]
    list_filter = ["status", "source", "verification"]
    ordering = ["-created_at"]
    actions = ["approve_selected", "reject_selected", "verify_selected", "rollback_selected"]
    change_form_template = "admin/reflection/suggestion_change_form.html"

    @admin.action(description="Re-verify selected applied suggestions", permissions=["approve"])
    def verify_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        verdicts: dict[str, int] = {}
        for suggestion in queryset.filter(status=SuggestionStatus.APPROVED):
            result = services.suggestion_verify(suggestion=suggestion)
            verdicts[result.verification] = verdicts.get(result.verification, 0) + 1
        summary = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(verdicts.items())) or "nothing applied"
        self.message_user(request, f"Verified: {summary}.", messages.INFO)

    @admin.action(description="Roll back selected suggestions (with a note)…", permissions=["approve"])
    def rollback_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        note, page = decision_page(self, request, queryset, verb="roll back", note_required=True,
                                   template="admin/reflection/suggestion_decision.html", items_name="suggestions",
                                   noun="suggestion")
        if page is not None:
            return page
        apply_to_each(self, request, queryset,
                      lambda suggestion: services.suggestion_rollback(suggestion=suggestion, acting_user=request.user, note=note),
                      success="{done} suggestion(s) rolled back.", failure="Not rolled back",
                      history=lambda result: f"Rolled back (case at v{result.rolled_back_version}): {note}")
        return None


def _experiment_of(suggestion: Suggestion) -> Experiment | None:
    try:
        return suggestion.experiment
    except Experiment.DoesNotExist:
        return None


def _can_roll_back(suggestion: Suggestion) -> bool:
    experiment = _experiment_of(suggestion)
    if experiment is not None:
        return experiment.status in ROLLBACK_FROM
    return suggestion.verification == Verification.REGRESSED and suggestion.rolled_back_version is None


@admin.register(LLMCall)
class LLMCallAdmin(admin.ModelAdmin):
    list_display = ["created_at", "purpose", "model", "outcome", "attempts", "tokens_in", "tokens_out", "cost_usd", "latency_ms"]
    list_filter = ["outcome", "purpose"]
    ordering = ["-created_at"]
    readonly_fields = [f.name for f in LLMCall._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
