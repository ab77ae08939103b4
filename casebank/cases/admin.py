from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from casebank.cases import services
from casebank.cases.plan_editor import PlanField
from casebank.models import Case, CaseReviewChange, CaseStatus, CaseStatusChange, CaseVersion, PendingCase
from casebank.search.ranking import track_record
from core.admin_support import HistoryInline, ReadOnlyAdminMixin, apply_to_each, decision_page
from core.errors import DomainError

STATUS_COLOURS: dict[str, str] = {
    CaseStatus.ACTIVE: "#1a7f37",
    CaseStatus.WARNING: "#bf8700",
    CaseStatus.DEPRECATED: "#6e7781",
    CaseStatus.ARCHIVED: "#57606a",
}


def status_badge(status: str) -> str:
    return format_html(
        '<span style="background:{};color:#fff;border-radius:9px;padding:1px 8px;font-size:11px">{}</span>',
        STATUS_COLOURS.get(status, "#57606a"),
        status,
    )


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


# The case list fits a 1,440 px screen: one line per case, the full title in the tooltip.
TITLE_CHARS = 36


def short_moment(moment: Any) -> str:
    """"Dec 06 07:35" this year, "2025-11-30" before: two date columns fit beside the filters;
    the full moment is in the tooltip."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    shape = "%b %d %H:%M" if local.year == timezone.localtime().year else "%Y-%m-%d"
    return format_html('<span style="white-space:nowrap" title="{}">{}</span>',
                       local.strftime("%Y-%m-%d %H:%M %Z"), local.strftime(shape))


class CaseForm(forms.ModelForm):
    plan = PlanField(
        help_text="Steps, each naming the agent that takes it; or the JSON view: text in quotes, or a list of "
                  'steps [{"agent": "data_analysis", "action": "..."}]. Checked like the API checks it.',
    )
    tags = forms.JSONField(
        required=False,
        initial=list,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text='A JSON list, e.g. ["sql", "revenue"].',
    )

    class Meta:
        model = Case
        fields = ["title", "query", "plan", "category", "tags"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        try:
            services.validate_case_content(
                title=data.get("title", ""),
                query=data.get("query", ""),
                plan=data.get("plan"),
                category=data.get("category", ""),
                tags=data.get("tags") or [],
            )
        except DomainError as error:
            for field, problems in error.errors.items():
                self.add_error(field if field in self.fields else None, problems)
        return data


class CaseVersionInline(HistoryInline):
    model = CaseVersion
    fields = ["version", "reason", "author", "created_at", "plan_preview", "logs", "rollback"]
    ordering = ["-version"]
    verbose_name_plural = "Version history"

    @admin.display(description="Runs")
    def logs(self, version: CaseVersion) -> str:
        # By URL name and parameters only: the case bank imports nothing of reflection.
        url = reverse("admin:reflection_executionlog_changelist")
        return format_html('<a href="{}?case__id__exact={}&amp;case_version={}">logs of v{}</a>',
                           url, version.case_id, version.version, version.version)

    @admin.display(description="Plan")
    def plan_preview(self, version: CaseVersion) -> str:
        text = version.plan if isinstance(version.plan, str) else json.dumps(version.plan)
        return text[:120] + ("…" if len(text) > 120 else "")

    @admin.display(description="")
    def rollback(self, version: CaseVersion) -> str:
        if version.version == version.case.version:
            return "current"
        url = reverse("admin:casebank_case_rollback", args=[version.case_id, version.version])
        return format_html('<a class="button" href="{}">Roll back to v{}</a>', url, version.version)


class CaseStatusChangeInline(HistoryInline):
    model = CaseStatusChange
    fields = ["created_at", "from_status", "to_status", "actor", "reason"]
    verbose_name_plural = "Status history"


class CaseReviewChangeInline(HistoryInline):
    model = CaseReviewChange
    fields = ["created_at", "from_state", "to_state", "actor", "note"]
    verbose_name_plural = "Review history"


class CaseColumnsMixin(admin.ModelAdmin):
    """What both case screens show the same way (the bank and the review queue of new cases)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("embedding")

    @admin.display(description="Status", ordering="status")
    def status_label(self, case: Case) -> str:
        if case.review_state == "approved":
            return status_badge(case.status)
        # The review state shows only when it keeps the case out of retrieval (pending, rejected).
        return format_html("{} <small>{} review</small>", status_badge(case.status), case.review_state)

    @admin.display(description="Success rate", ordering="success_rate")
    def success(self, case: Case) -> str:
        return percent(case.success_rate)

    @admin.display(description="Title", ordering="title")
    def title_short(self, case: Case) -> str:
        text = case.title if len(case.title) <= TITLE_CHARS else case.title[:TITLE_CHARS - 1] + "…"
        return format_html('<span title="{}" style="white-space:nowrap">{}</span>', case.title, text)

    # Two different counts that the list used to show side by side as "Run count" / "Usage count".
    @admin.display(description="Runs (30 d)", ordering="run_count")
    def runs_analysed(self, case: Case) -> int:
        return case.run_count

    @admin.display(description="Reuse value")
    def reuse_value(self, case: Case) -> str:
        return format_html(
            "{} <small>({} helped, {} harmed, recent runs weigh more)</small>",
            percent(track_record(case.reuse_helped, case.reuse_harmed)),
            f"{case.reuse_helped:.1f}", f"{case.reuse_harmed:.1f}",
        )

    @admin.display(description="Times retrieved", ordering="usage_count")
    def times_retrieved(self, case: Case) -> int:
        return case.usage_count

    @admin.display(description="Last retrieved", ordering="last_used_at")
    def last_used(self, case: Case) -> str:
        return short_moment(case.last_used_at)

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, case: Case) -> str:
        return short_moment(case.updated_at)


@admin.register(Case)
class CaseAdmin(CaseColumnsMixin, admin.ModelAdmin):
    form = CaseForm
    # Fits 1,440 px beside the filters: the version is on the case page (and in its title).
    list_display = [
        "title_short",
        "status_label",
        "category",
        "success",
        "runs_analysed",
        "times_retrieved",
        "last_used",
        "updated",
    ]
    list_display_links = ["title_short"]
    list_filter = ["status", "review_state", "category"]
    search_fields = ["title", "query", "=id"]
    ordering = ["-updated_at"]
    list_per_page = 50
    readonly_fields = [
        "id",
        "status_label",
        "review_state",
        "version",
        "success",
        "runs_analysed",
        "reuse_value",
        "times_retrieved",
        "last_used_at",
        "created_at",
        "updated_at",
        "updated_by",
    ]
    fieldsets = [
        (None, {"fields": ["title", "query", "plan", "category", "tags"]}),
        (
            "Lifecycle and track record",
            {"fields": ["id", "status_label", "review_state", "version", "success", "runs_analysed", "reuse_value",
                        "times_retrieved", "last_used_at"],
             "description": "Runs analysed: executions in the window of the case's last analysis (30 days by default). "
                            "Reuse value: the chance that a run of this plan succeeds, from its successful (helped) "
                            "and failed (harmed) runs, each weighted by age (half-life REFLECTION_HALF_LIFE_DAYS) "
                            "and shrunk towards 50% while there are few; search uses it to order near-ties. "
                            "Times retrieved: how often search returned the case to a planner, ever. "
                            "A run without retrieval (a caller naming the case) counts only in the first."},
        ),
        ("Audit", {"fields": ["created_at", "updated_at", "updated_by"]}),
    ]
    inlines = [CaseVersionInline, CaseStatusChangeInline, CaseReviewChangeInline]
    actions = ["mark_active", "mark_deprecated", "mark_archived"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Cases are archived, never deleted: their logs and history must survive.
        return False

    def save_model(self, request: HttpRequest, obj: Case, form: Any, change: bool) -> None:
        data = form.cleaned_data
        content = {field: data[field] for field in ["title", "query", "plan", "category"]}
        content["tags"] = data.get("tags") or []
        if change:
            saved = services.case_update(case=Case.objects.get(pk=obj.pk), actor=request.user.username, **content)
        else:
            saved = services.case_create(actor=request.user.username, **content)
        # The admin redirects and logs by this object: make it the one the service wrote.
        obj.pk, obj.version = saved.pk, saved.version

    def _set_status(self, request: HttpRequest, queryset: QuerySet, status: str) -> None:
        moved, refused = 0, []
        for case in queryset:
            try:
                updated = services.case_set_status(
                    case=case, status=status, actor=request.user.username, reason="admin action",
                    may_restore=request.user.has_perm(services.RESTORE_PERMISSION),
                )
            except DomainError as error:
                refused.append(f"{case.title}: {error.message}")
                continue
            if updated.status == status:
                moved += 1
                self.log_change(request, case, f"Status set to {status}.")
        if moved:
            self.message_user(request, f"{moved} case(s) now {status}.", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.WARNING)

    @admin.action(description="Mark selected cases active", permissions=["change"])
    def mark_active(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, CaseStatus.ACTIVE)

    @admin.action(description="Deprecate selected cases", permissions=["change"])
    def mark_deprecated(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, CaseStatus.DEPRECATED)

    @admin.action(description="Archive selected cases", permissions=["change"])
    def mark_archived(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, CaseStatus.ARCHIVED)

    def get_urls(self) -> list:
        custom = [
            path(
                "<path:object_id>/rollback/<int:version>/",
                self.admin_site.admin_view(self.rollback_view),
                name="casebank_case_rollback",
            )
        ]
        return custom + super().get_urls()

    def rollback_view(self, request: HttpRequest, object_id: str, version: int) -> HttpResponse:
        """Confirm, then roll back: the old snapshot becomes a new version."""
        if not request.user.has_perm("casebank.rollback_case"):
            raise PermissionDenied
        # Like ModelAdmin.get_object: a malformed id is "not found", not a ValidationError (500).
        case = self.get_object(request, unquote(object_id))
        if case is None:
            raise Http404("No such case.")
        snapshot = get_object_or_404(CaseVersion, case=case, version=version)
        change_url = reverse("admin:casebank_case_change", args=[case.pk])
        if request.method == "POST":
            try:
                updated = services.case_rollback(case=case, to_version=version, actor=request.user.username)
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
                return HttpResponseRedirect(change_url)
            self.log_change(request, case, f"Rolled back to v{version} as v{updated.version}.")
            self.message_user(
                request, f"Rolled back to v{version}: the case is now at v{updated.version}.", messages.SUCCESS
            )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Roll back “{case.title}” to v{version}?",
            "case": case,
            "snapshot": snapshot,
            "current_plan": json.dumps(case.plan, indent=2, ensure_ascii=False),
            "snapshot_plan": json.dumps(snapshot.plan, indent=2, ensure_ascii=False),
            "opts": self.model._meta,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/casebank/case/rollback_confirmation.html", context)


REVIEW_PERMISSION = "casebank.review_case"


PENDING_CASE_FIELDS = ("id", "title", "query", "plan_pretty", "category", "tags", "status_label", "success",
                       "runs_analysed", "created_at", "updated_by")


@admin.register(PendingCase)
class PendingCaseAdmin(CaseColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The review queue: cases filed by successful sessions, oldest first, read-only.

    Approve makes a case a reusable plan (retrieved and planned with); reject keeps it out for
    good. Both need `casebank.review_case`, go through a page asking for a note (required to
    reject), call the services (which write the audit row) and log the change.
    """

    list_display = ["title_short", "category", "status_label", "success", "runs_analysed", "created_at", "updated_by"]
    list_filter = ["category"]
    search_fields = ["title", "query", "=id"]
    ordering = ["created_at"]
    list_per_page = 50
    fields = PENDING_CASE_FIELDS
    readonly_fields = PENDING_CASE_FIELDS
    inlines = [CaseReviewChangeInline]
    actions = ["approve_selected", "reject_selected"]
    change_form_template = "admin/casebank/pendingcase/change_form.html"

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    @admin.display(description="Plan")
    def plan_pretty(self, case: Case) -> str:
        return format_html("<pre>{}</pre>", json.dumps(case.plan, indent=2, ensure_ascii=False))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        extra = {"can_review": self.has_review_permission(request)}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def _decide(self, request: HttpRequest, queryset: QuerySet, *, verb: str) -> HttpResponse | None:
        note, page = decision_page(self, request, queryset, verb=verb, note_required=verb == "reject",
                                   template="admin/casebank/pendingcase/decision.html", items_name="cases", noun="case")
        if page is not None:
            return page
        service = services.case_review_approve if verb == "approve" else services.case_review_reject
        apply_to_each(self, request, queryset, lambda case: service(case=case, actor=request.user.get_username(), note=note),
                      success=f"{{done}} case(s) {verb}d.", failure="Not changed", name=lambda case: case.title,
                      history=lambda case: f"Review: {verb}d" + (f": {note}" if note else ""))
        return None

    @admin.action(description="Approve selected cases as reusable plans…", permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, verb="approve")

    @admin.action(description="Reject selected cases (with a note)…", permissions=["review"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, verb="reject")
