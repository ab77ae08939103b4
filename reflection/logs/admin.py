from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from casebank.cases.admin import short_moment
from casebank.models import Case
from core.admin_support import ReadOnlyAdminMixin
from reflection.models import ExecutionLog

ERROR_TYPE_CHOICES_KEY = "reflection:admin:error-types"


class EstimatedCountPaginator(Paginator):
    """Paging a million-row table must not run COUNT(*) on every page view.

    On PostgreSQL the planner's row estimate stands in for the unfiltered count. A filtered
    list (one case, failures, an error type: each can match millions) is counted only up to
    `COUNT_LIMIT` rows, on both databases; past that the pages stop (narrow the filter).
    """

    COUNT_LIMIT = 10_000
    object_list: QuerySet  # ExecutionLogAdmin pages a queryset, never a list

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if not query.where:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                        [ExecutionLog._meta.db_table],
                    )
                    estimate = cursor.fetchone()[0]
                if estimate and estimate > self.COUNT_LIMIT:
                    return int(estimate)
            return super().count
        # COUNT(*) over a LIMITed subquery: reads at most COUNT_LIMIT + 1 index entries.
        return min(self.object_list.order_by()[: self.COUNT_LIMIT + 1].count(), self.COUNT_LIMIT)


class CaseFilter(admin.SimpleListFilter):
    """Logs of one case, by `?case__id__exact=<id>` (the links on the case's admin pages and in
    the list's case column): never a choice list of every case, only the chosen one's title."""

    title = "case"
    parameter_name = "case__id__exact"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        # Shown only while filtering (a filter without choices is not applied at all).
        value = self.value()
        if not value:
            return []
        case_id = self._case_id()
        title = Case.objects.filter(pk=case_id).values_list("title", flat=True).first() if case_id else None
        return [(value, title[:60] if title is not None else f"{value[:40]} (no such case)")]

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        case_id = self._case_id()
        if case_id is None:
            raise IncorrectLookupParameters(f"{self.value()!r} is not a case id.")
        return queryset.filter(case_id=case_id)

    def _case_id(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(str(self.value())) if self.value() else None
        except ValueError:
            return None


class CaseVersionFilter(admin.SimpleListFilter):
    """Logs of one case version, by `?case_version=<n>` (links from a case's version history, a
    suggestion's versions and the list's version column); shown only while filtering."""

    title = "case version"
    parameter_name = "case_version"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"v{value}")] if value else []

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit() or len(value) > 9:
            raise IncorrectLookupParameters(f"{value!r} is not a version number.")
        return queryset.filter(case_version=int(value))


def case_logs_url(case_id: Any, version: int | None = None) -> str:
    """The log list filtered to one case (and one of its versions)."""
    url = f"{reverse('admin:reflection_executionlog_changelist')}?{CaseFilter.parameter_name}={case_id}"
    return url if version is None else f"{url}&{CaseVersionFilter.parameter_name}={version}"


def version_with_logs_html(case_id: Any, version: int | None) -> str:
    """"v3" linking to the case's version history, and the logs of that version."""
    if version is None:
        return "—"
    history = f"{reverse('admin:casebank_case_change', args=[case_id])}#versions-group"
    return format_html('<a href="{}" title="The version history">v{}</a> (<a href="{}">its logs</a>)',
                      history, version, case_logs_url(case_id, version))


class ErrorTypeFilter(admin.SimpleListFilter):
    """The most frequent error types of the last week, not a DISTINCT over all history.

    The counts beside the choices cover those 7 days while the filtered list covers all time:
    the title says so, or "TimeoutError (100)" above 428 listed logs reads as a wrong count."""

    title = "error type (counts: last 7 days)"
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
class ExecutionLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # One line per log at 1,440 px beside the filters.
    list_display = [
        "when",
        "outcome",
        "case_link",
        "version_link",
        "error_type",
        "duration",
        "tokens",
        "model_name",
        "session_column",
    ]
    list_filter = [CaseFilter, CaseVersionFilter, "success", ErrorTypeFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["case"]
    search_fields = ["=id", "=case__id", "=session_id"]
    search_help_text = "Exact log id, case id or session id."
    raw_id_fields = ["case"]
    date_hierarchy = None
    ordering = ["-created_at"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    readonly_fields = [f.name for f in ExecutionLog._meta.fields if f.name not in ("case", "session_id")] + [
        "case_link", "version_history", "session_link"]

    def get_queryset(self, request: Any) -> QuerySet:
        # The list never shows the message or context: leave the big columns on disk.
        return super().get_queryset(request).defer("context", "error_message", "error_template", "case__embedding", "case__plan")

    @admin.display(description="Run at", ordering="created_at")
    def when(self, log: ExecutionLog) -> str:
        return short_moment(log.created_at)

    @admin.display(description="Outcome", ordering="success")
    def outcome(self, log: ExecutionLog) -> str:
        if log.success:
            return format_html('<span style="color:{};font-weight:600;white-space:nowrap">{}</span>', "#1a7f37", "✔ success")
        return format_html('<span style="color:{};font-weight:600;white-space:nowrap">{}</span>', "#cf222e", "✘ failed")

    @admin.display(description="Took", ordering="execution_time_ms")
    def duration(self, log: ExecutionLog) -> str:
        return format_html('<span style="white-space:nowrap">{} ms</span>', f"{log.execution_time_ms:,}")

    @admin.display(description="Model", ordering="model")
    def model_name(self, log: ExecutionLog) -> str:
        return format_html('<span style="white-space:nowrap">{}</span>', log.model or "—")

    @admin.display(description="Case")
    def case_link(self, log: ExecutionLog) -> str:
        if log.case is None:
            return "—"
        return format_html(
            '<a href="/admin/casebank/case/{}/change/">{}</a> <a href="?{}={}" title="{}">⌕</a>',
            log.case_id, log.case.title[:60], CaseFilter.parameter_name, log.case_id, "Only this case's logs",
        )

    @admin.display(description="Version", ordering="case_version")
    def version_link(self, log: ExecutionLog) -> str:
        if log.case_version is None or log.case_id is None:
            return "—"
        return format_html('<a href="{}" title="Only this version\'s logs">v{}</a>',
                           case_logs_url(log.case_id, log.case_version), log.case_version)

    @admin.display(description="Case version")
    def version_history(self, log: ExecutionLog) -> str:
        return version_with_logs_html(log.case_id, log.case_version) if log.case_id else "—"

    @admin.display(description="Session")
    def session_column(self, log: ExecutionLog) -> str:
        if log.session_id is None:
            return "—"
        try:
            url = reverse("admin:agents_session_change", args=[log.session_id])
        except NoReverseMatch:
            return "—"
        return format_html('<a href="{}" title="{}">session</a>', url, log.session_id)

    @admin.display(description="Session")
    def session_link(self, log: ExecutionLog) -> str:
        if log.session_id is None:
            return "—"
        # By URL name only: reflection imports nothing of agents (the dependency rule).
        try:
            url = reverse("admin:agents_session_change", args=[log.session_id])
        except NoReverseMatch:
            return str(log.session_id)
        return format_html('<a href="{}">{}</a>', url, log.session_id)

    @admin.display(description="Tokens in/out")
    def tokens(self, log: ExecutionLog) -> str:
        return f"{log.tokens_in} / {log.tokens_out}"

# The approval console (pending suggestions, decisions, verification, rollback) and LLM calls.
# Reflection runs, analyses and the per-case analysis page.
from reflection.analysis import admin as admin_analysis  # noqa: E402,F401
from reflection.suggestions import admin as admin_suggestions  # noqa: E402,F401
