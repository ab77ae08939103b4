"""Admin: sessions with their steps (events), scores and timings; knowledge documents."""
from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

from agents.models import Session
from agents.sessions.presentation import session_page


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    """Read-only: sessions are written by the supervisor only. The page leads with what a reader
    came for (answer, result table and chart, sources, errors, timeline: `presentation`); the
    stored fields follow for the details."""

    change_form_template = "admin/agents/session/change_form.html"

    list_display = ["query_short", "status", "phase", "iteration", "plan_source", "passed", "score_list", "total_ms", "created_at"]
    list_filter = ["status", "plan_source", "passed"]
    search_fields = ["query", "id"]
    date_hierarchy = "created_at"
    list_select_related = ["case"]
    raw_id_fields = ["case", "created_case"]
    readonly_fields = [
        "id", "query", "status", "phase", "iteration", "plan_source", "plan_pretty", "scores_table",
        "timings_table", "passed", "tokens_in", "tokens_out", "cost_usd", "model",
        "case", "case_version", "similarity", "created_case", "log_id", "created_by", "created_at",
        "started_at", "finished_at", "attempts", "retry_at", "lease_owner", "lease_until", "api_key", "owner",
    ]
    # Below the answer, result and timeline (the template): what was run, how it scored, by whom.
    fieldsets = [
        (None, {"fields": ["query", "status", "passed", "phase", "iteration", "id"]}),
        ("Plan and evaluation", {"fields": ["plan_source", "plan_pretty", "scores_table", "timings_table"]}),
        ("Cases and logs", {"fields": ["case", "case_version", "similarity", "created_case", "log_id"]}),
        ("Spend", {"fields": ["tokens_in", "tokens_out", "cost_usd", "model"]}),
        ("Runtime", {"fields": ["created_by", "api_key", "owner", "created_at", "started_at", "finished_at", "attempts",
                                "retry_at", "lease_owner", "lease_until"], "classes": ["collapse"]}),
    ]

    @admin.display(description="query")
    def query_short(self, session: Session) -> str:
        return session.query[:80]

    @admin.display(description="scores")
    def score_list(self, session: Session) -> str:
        return ", ".join(f"{agent} {score:.2f}" for agent, score in (session.scores or {}).items())

    @admin.display(description="total ms")
    def total_ms(self, session: Session) -> Any:
        return (session.timings_ms or {}).get("total")

    @admin.display(description="plan")
    def plan_pretty(self, session: Session) -> str:
        # Wrapped: a step's SQL is one long line.
        return format_html('<pre style="white-space:pre-wrap;word-break:break-word">{}</pre>',
                           json.dumps(session.plan, indent=2, default=str, ensure_ascii=False))

    @admin.display(description="case similarity")
    def similarity(self, session: Session) -> str:
        """How close the query was to the case whose plan was used (cosine, 0..1)."""
        return "—" if session.case_similarity is None else f"{session.case_similarity:.3f}"

    @admin.display(description="scores")
    def scores_table(self, session: Session) -> str:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", ((a, f"{s:.2f}") for a, s in (session.scores or {}).items()))
        return format_html("<table><tr><th>agent</th><th>quality</th></tr>{}</table>", rows)

    @admin.display(description="timings (ms)")
    def timings_table(self, session: Session) -> str:
        flat: list[tuple[str, Any]] = []
        for name, value in (session.timings_ms or {}).items():
            if isinstance(value, dict):
                flat.extend((f"{name}: {k}", v) for k, v in value.items())
            else:
                flat.append((name, value))
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", flat)
        return format_html("<table>{}</table>", rows)

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        # The execution log and the case a session made point at it: it stays as the record.
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        session = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if session is not None and self.has_view_permission(request, session):
            context["page"] = session_page(session)
        return super().change_view(request, object_id, form_url, extra_context=context)
