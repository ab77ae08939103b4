"""Admin for reflection: runs (and starting one), analyses, and a per-case analysis page."""
from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from casebank.models import Case, CaseStatusChange
from reflection.analysis import selectors, services
from reflection.analysis.charts import daily_outcomes_svg, success_rate_trend_svg
from reflection.models import CaseAnalysis, ReflectionRun, ReflectionTrigger, Suggestion

TREND_POINTS = 60
# Cases and suggestions listed on a run's page (weakest first); the rest are one link away.
RUN_PAGE_ROWS = 200
# Days in the daily chart of a case never analysed (else its analysis window).
DAILY_DAYS = 30


@admin.register(ReflectionRun)
class ReflectionRunAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "trigger", "requested_by", "cases_analysed", "cases_skipped", "cases_failed",
                    "warnings_set", "warnings_cleared", "duration_ms", "created_at"]
    list_filter = ["status", "trigger"]
    ordering = ["-created_at"]
    readonly_fields = [field.name for field in ReflectionRun._meta.fields]
    change_list_template = "admin/reflection/reflectionrun/change_list.html"
    change_form_template = "admin/reflection/reflectionrun/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A run is the record of what was analysed when; its page offers no Delete.
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        """A run's page lists what it did, not only counts: the cases it analysed and the
        suggestions made for them since it started (each a link)."""
        run = ReflectionRun.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra: dict[str, Any] = {}
        if run is not None:
            analyses = list(
                CaseAnalysis.objects.filter(run=run).select_related("case").defer("result", "case__embedding", "case__plan")
                .order_by("success_rate")[:RUN_PAGE_ROWS]
            )
            suggestions = (
                Suggestion.objects.filter(case_id__in=[a.case_id for a in analyses], created_at__gte=run.started_at)
                .select_related("case").defer("case__embedding", "case__plan", "evidence", "current_plan", "revised_plan")
                .order_by("-created_at")[:RUN_PAGE_ROWS] if run.started_at else []
            )
            extra = {
                "run_analyses": analyses,
                "run_analyses_url": reverse("admin:reflection_caseanalysis_changelist") + f"?run__id__exact={run.pk}",
                "run_suggestions": suggestions,
                "run_page_rows": RUN_PAGE_ROWS,
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self) -> list:
        return [
            path("start/", self.admin_site.admin_view(require_POST(self.start_view)), name="reflection_run_start"),
            *super().get_urls(),
        ]

    def start_view(self, request: HttpRequest) -> HttpResponse:
        # Starting a run creates one: the add permission guards it.
        if not request.user.has_perm("reflection.add_reflectionrun"):
            raise PermissionDenied
        with transaction.atomic():
            run = services.reflection_run_start(trigger=ReflectionTrigger.ADMIN, requested_by=request.user.get_username())
        self.message_user(request, f"Reflection run #{run.pk} queued.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:reflection_reflectionrun_changelist"))


@admin.register(CaseAnalysis)
class CaseAnalysisAdmin(admin.ModelAdmin):
    list_display = ["created_at", "case_link", "total_executions", "rate", "weighted", "latency_p95_ms", "slow_label",
                    "anomaly_count", "confidence", "run"]
    list_filter = ["confidence", "slow"]
    list_select_related = ["case", "run"]
    raw_id_fields = ["case", "run"]
    ordering = ["-created_at"]
    search_fields = ["case__title"]
    readonly_fields = [field.name for field in CaseAnalysis._meta.fields]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).defer("result", "case__embedding", "case__plan")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Analyses are the case's history (its trend chart): read-only, no Delete.
        return False

    @admin.display(description="case")
    def case_link(self, obj: CaseAnalysis) -> str:
        url = reverse("admin:reflection_case_analysis_page", args=[obj.case_id])
        return format_html('<a href="{}">{}</a>', url, obj.case.title)

    # Not a boolean icon: a red ✗ on every healthy row read as a failure. Only "slow" is marked.
    @admin.display(description="slow (p95 > 2 s)", ordering="slow")
    def slow_label(self, obj: CaseAnalysis) -> str:
        if obj.slow:
            return format_html('<span style="color:#bf8700;font-weight:600">{}</span>', "slow")
        return format_html('<span style="color:#6e7781">{}</span>', "no")

    @admin.display(description="success rate")
    def rate(self, obj: CaseAnalysis) -> str:
        return "—" if obj.success_rate is None else f"{obj.success_rate:.1%}"

    @admin.display(description="weighted")
    def weighted(self, obj: CaseAnalysis) -> str:
        return "—" if obj.weighted_success_rate is None else f"{obj.weighted_success_rate:.1%}"

    def get_urls(self) -> list:
        return [
            path("case/<uuid:case_id>/", self.admin_site.admin_view(self.case_page), name="reflection_case_analysis_page"),
            *super().get_urls(),
        ]

    def case_page(self, request: HttpRequest, case_id: uuid.UUID) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        case = Case.objects.defer("embedding").filter(pk=case_id).first()
        if case is None:
            raise Http404("No such case.")
        if request.method == "POST":
            if not request.user.has_perm("reflection.add_reflectionrun"):
                raise PermissionDenied
            services.case_analysis_record(case_id=case.pk)
            self.message_user(request, "Analysed now.", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        history = list(
            CaseAnalysis.objects.filter(case=case).order_by("-created_at")
            .values_list("created_at", "success_rate", "weighted_success_rate")[:TREND_POINTS]
        )[::-1]
        latest = selectors.case_analysis_latest(case_id=case.pk)
        days = latest.window_days if latest else DAILY_DAYS
        context = {
            **self.admin_site.each_context(request),
            "title": f"Analysis: {case.title}",
            "case": case,
            "analysis": latest.result if latest else None,
            "analysed_at": latest.created_at if latest else None,
            "chart": success_rate_trend_svg(history),
            "daily_days": days,
            "daily_chart": daily_outcomes_svg(selectors.case_daily_outcomes(case_id=case.pk, days=days)),
            "opts": self.model._meta,
            "can_analyse": request.user.has_perm("reflection.add_reflectionrun"),
            # Why the case has its status (a warning at 74 % comes from a recent drop, not the rate).
            "status_change": CaseStatusChange.objects.filter(case=case).order_by("-created_at").first(),
            "suggestion_refused": selectors.case_suggestion_refusal(case_id=case.pk),
        }
        return TemplateResponse(request, "admin/reflection/case_analysis.html", context)
