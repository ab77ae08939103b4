"""HTML pieces of the approval console: the evidence and the current-vs-revised plan diff."""
from __future__ import annotations

import difflib
import json
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

DIFF_CSS = """
<style>
table.plan-diff{border-collapse:collapse;font-family:ui-monospace,monospace;font-size:12px;width:100%}
table.plan-diff td{padding:2px 6px;vertical-align:top;white-space:pre-wrap;overflow-wrap:anywhere;border:none;width:48%}
table.plan-diff th{background:var(--darkened-bg);padding:4px 6px;text-align:left}
table.plan-diff td.diff_header{color:#888;text-align:right;width:2.5em}
table.plan-diff th.diff_header{text-align:left;font-family:system-ui,sans-serif}
table.plan-diff .diff_next{display:none}
table.plan-diff .diff_add{background:#d7f5dd;color:#0b3d17}
table.plan-diff .diff_chg{background:#fff2b3;color:#4d3b00}
table.plan-diff .diff_sub{background:#ffd7d5;color:#5c0b06}
table.evidence{width:100%;margin-bottom:8px}
table.evidence th{width:22%}
.evidence-block h4{margin:12px 0 4px}
</style>
"""


def plan_lines(plan: Any) -> list[str]:
    """A plan as text lines: steps one per line as `N. agent: action`, extra keys indented."""
    if isinstance(plan, str):
        return plan.splitlines() or [""]
    if isinstance(plan, list):
        lines: list[str] = []
        for index, step in enumerate(plan, start=1):
            if not isinstance(step, dict):
                lines.append(f"{index}. {json.dumps(step, ensure_ascii=False)}")
                continue
            agent = step.get("agent") or ", ".join(step.get("agents") or [])
            lines.append(f"{index}. [{agent}] {step.get('action', '')}".rstrip())
            for key, value in step.items():
                if key in ("agent", "agents", "action"):
                    continue
                lines.append(f"     {key}: {json.dumps(value, ensure_ascii=False)}")
        return lines
    return json.dumps(plan, indent=2, ensure_ascii=False).splitlines()


def plan_diff_html(current: Any, revised: Any, *, base_version: int) -> SafeString:
    # HtmlDiff escapes the lines itself (&, <, >), so its table is safe to mark as such.
    table = difflib.HtmlDiff().make_table(
        plan_lines(current), plan_lines(revised), f"Current plan (v{base_version})", "Proposed plan", context=False
    )
    # Plain spaces and CSS pre-wrap: long steps wrap at word boundaries instead of mid-word.
    table = table.replace('class="diff"', 'class="plan-diff"', 1).replace("&nbsp;", " ")
    return mark_safe(DIFF_CSS + table)  # noqa: S308


def _rate(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "—"


def evidence_html(evidence: dict) -> SafeString:
    analysis = evidence.get("analysis") or {}
    latency = analysis.get("latency_ms") or {}
    summary = format_html(
        '<table class="evidence"><tr><th>Runs in window</th><td>{} of {} runs{} succeeded ({} days)</td></tr>'
        "<tr><th>Success rate</th><td><strong>{}</strong> (recency-weighted {})</td></tr>"
        "<tr><th>Latency</th><td>p50 {} ms · p95 {} ms{}</td></tr>"
        "<tr><th>Confidence</th><td>{}</td></tr></table>",
        analysis.get("successes", "—"),
        analysis.get("total_executions", "—"),
        # Evidence stored before analyses were per version (issue #15) has no version: all pooled.
        f" of v{analysis['case_version']}" if analysis.get("case_version") else "",
        analysis.get("window_days", "—"),
        _rate(analysis.get("success_rate")),
        _rate(analysis.get("weighted_success_rate")),
        _num(latency.get("p50")),
        _num(latency.get("p95")),
        " (slow)" if analysis.get("slow") else "",
        analysis.get("confidence", "—"),
    )
    errors = evidence.get("common_errors") or []
    error_rows = format_html_join(
        "",
        "<tr><td><code>{}</code></td><td>{}</td><td>{}%</td><td>{}</td></tr>",
        (
            (e.get("error_type") or "(none)", e.get("count"), e.get("percentage"), (e.get("example") or "")[:200])
            for e in errors[:5]
        ),
    )
    examples = format_html_join(
        "",
        "<li><code>{}</code> {} <span style='color:#888'>(v{}, {} ms)</span></li>",
        (
            (x.get("error_type") or "", (x.get("error_message") or "")[:200], x.get("case_version"), x.get("execution_time_ms"))
            for x in evidence.get("failing_examples") or []
        ),
    )
    similar = format_html_join(
        "",
        "<li>{} <a href='/admin/casebank/case/{}/change/'>{}</a> — {} success over {} runs</li>",
        (
            (label, c.get("id"), c.get("title"), _rate(c.get("success_rate")), c.get("runs"))
            for key, label in (("similar_successes", "✔"), ("similar_failures", "✘"))
            for c in evidence.get(key) or []
        ),
    )
    return format_html(
        '<div class="evidence-block">{}<h4>Error groups</h4><table class="evidence"><tr><th>Error</th><th>Runs</th>'
        "<th>Share</th><th>Example</th></tr>{}</table><h4>Failing runs</h4><ul>{}</ul>"
        "<h4>Similar cases (✔ example to follow, ✘ warning)</h4><ul>{}</ul></div>",
        summary,
        error_rows or mark_safe("<tr><td colspan=4>none</td></tr>"),
        examples or mark_safe("<li>none</li>"),
        similar or mark_safe("<li>none found</li>"),
    )


def _num(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else "—"


def changes_html(changes: list) -> SafeString:
    return format_html(
        "<ol>{}</ol>",
        format_html_join(
            "",
            "<li><strong>{}</strong><br><span style='color:#666'>{}</span></li>",
            ((c.get("what", ""), c.get("why", "")) if isinstance(c, dict) else (str(c), "") for c in changes),
        ),
    )


VERIFICATION_COLOURS = {"improved": "#1a7f37", "regressed": "#cf222e", "no_change": "#6e7781", "pending": "#9a6700"}


def verification_badge(status: str, detail: dict) -> SafeString:
    if not status:
        return mark_safe("—")
    before, after = detail.get("before") or {}, detail.get("after") or {}
    return format_html(
        '<span style="color:{};font-weight:600">{}</span> <span style="color:#888">'
        "before {}/{} ({}), after {}/{} ({}), p = {}</span>",
        VERIFICATION_COLOURS.get(status, "#000"),
        status.replace("_", " "),
        before.get("successes", 0), before.get("runs", 0), _rate(before.get("success_rate")),
        after.get("successes", 0), after.get("runs", 0), _rate(after.get("success_rate")),
        detail.get("p_value") if detail.get("p_value") is not None else "—",
    )
