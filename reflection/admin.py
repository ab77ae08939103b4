from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from reflection.models import ExecutionLog

ERROR_TYPE_CHOICES_KEY = "reflection:admin:error-types"


class EstimatedCountPaginator(Paginator):
    """Paging a million-row table must not run COUNT(*) on every page view.

    On PostgreSQL the planner's row estimate stands in for the unfiltered count; filtered
    lists are counted exactly, since they are bounded by an index.
    """

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [ExecutionLog._meta.db_table],
                )
                estimate = cursor.fetchone()[0]
            if estimate and estimate > 10_000:
                return int(estimate)
        return super().count


class ErrorTypeFilter(admin.SimpleListFilter):
    """The most frequent error types of the last week, not a DISTINCT over all history."""

    title = "error type"
    parameter_name = "error_type"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        choices = cache.get(ERROR_TYPE_CHOICES_KEY)
        if choices is None:
            since = timezone.now() - timedelta(days=7)
            rows = (
                ExecutionLog.objects.filter(created_at__gte=since, success=False)
                .exclude(error_type="")
                .values("error_type")
                .annotate(n=Count("id"))
                .order_by("-n")[:20]
            )
            choices = [(row["error_type"], f"{row['error_type']} ({row['n']})") for row in rows]
            cache.set(ERROR_TYPE_CHOICES_KEY, choices, 300)
        return choices

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(error_type=self.value())
        return queryset


@admin.register(ExecutionLog)
class ExecutionLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "outcome",
        "case_link",
        "case_version",
        "error_type",
        "execution_time_ms",
        "tokens",
        "model",
    ]
    list_filter = ["success", ErrorTypeFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["case"]
    search_fields = ["=id", "=case__id", "=session_id"]
    search_help_text = "Exact log id, case id or session id."
    raw_id_fields = ["case"]
    date_hierarchy = None
    ordering = ["-created_at"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    readonly_fields = [f.name for f in ExecutionLog._meta.fields]

    def get_queryset(self, request: Any) -> QuerySet:
        # The list never shows the message or context: leave the big columns on disk.
        return super().get_queryset(request).defer("context", "error_message", "case__embedding", "case__plan")

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description="Outcome", ordering="success")
    def outcome(self, log: ExecutionLog) -> str:
        if log.success:
            return format_html('<span style="color:{};font-weight:600">{}</span>', "#1a7f37", "✔ success")
        return format_html('<span style="color:{};font-weight:600">{}</span>', "#cf222e", "✘ failed")

    @admin.display(description="Case")
    def case_link(self, log: ExecutionLog) -> str:
        if log.case is None:
            return "—"
        return format_html(
            '<a href="/admin/casebank/case/{}/change/">{}</a>', log.case_id, log.case.title[:60]
        )

    @admin.display(description="Tokens in/out")
    def tokens(self, log: ExecutionLog) -> str:
        return f"{log.tokens_in} / {log.tokens_out}"

# The approval console (pending suggestions, decisions, verification, rollback) and LLM calls.
from reflection import admin_suggestions  # noqa: E402,F401
# Reflection runs, analyses and the per-case analysis page.
from reflection import admin_analysis  # noqa: E402,F401
