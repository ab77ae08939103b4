"""What the admin session page shows, built from a stored session: the answer with its citations
linked, the result rows as a bounded table, a bar chart, the sources, the errors and a readable
event timeline. Plain functions over stored JSON, which may hold anything an older runtime or a
hand-made row put there: every value is checked, bounded and escaped here or by the template."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from agents.knowledge.models import DocumentChunk
from agents.models import Session, SessionEvent
from core.charts import horizontal_bars_svg

# Rows a page shows; the rest stay in the stored result (and the API).
TABLE_ROWS = 50
CELL_CHARS = 200
CHART_BARS = 30
# Events in the timeline: a long session's stream (answer pieces) must not make a huge page.
TIMELINE_EVENTS = 300
MESSAGE_CHARS = 300
_CITATION = re.compile(r"\[(\d{1,4})\]")


@dataclass
class Cell:
    text: str
    kind: str  # "num" (right-aligned), "null", or "" for text


def cell(value: Any) -> Cell:
    if value is None:
        return Cell("null", "null")
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return Cell(cell_text(value), "num" if numeric else "")


@dataclass
class ResultTable:
    columns: list[str]
    rows: list[list[Cell]]
    total: int
    truncated_by_source: bool  # the worker's own row cap cut the result

    @property
    def note(self) -> str:
        shown = len(self.rows)
        text = f"{self.total:,} row{'s' if self.total != 1 else ''}"
        if shown < self.total:
            text = f"First {shown} of {text}."
        else:
            text += "."
        if self.truncated_by_source:
            text += " The query hit the row cap, so the result itself is incomplete."
        return text


@dataclass
class TimelineEntry:
    sequence: int
    offset: str
    phase: str
    kind: str
    agent: str
    message: str


@dataclass
class SessionPage:
    answer: SafeString
    data_sql: str = ""
    table: ResultTable | None = None
    chart: SafeString | None = None
    chart_caption: str = ""
    sources: list[dict] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    timeline_hidden: int = 0
    links: list[tuple[str, str]] = field(default_factory=list)


def cell_text(value: Any) -> str:
    """One result cell as text: null and non-finite numbers named, long values cut."""
    if value is None:
        return "null"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:,.4f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{value:,.0f}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 10**15 else str(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _data(session: Session) -> dict:
    data = (session.results or {}).get("data_analysis")
    return data if isinstance(data, dict) else {}


def _answer_sources(session: Session) -> list[dict]:
    summary = (session.results or {}).get("answer")
    sources = summary.get("sources") if isinstance(summary, dict) else None
    return [s for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []


def answer_html(text: str, numbers: set[int]) -> SafeString:
    """The answer escaped, each `[n]` of a listed source a link to it (others left as text)."""
    escaped = str(escape(text))

    def link(match: re.Match) -> str:
        n = int(match.group(1))
        return f'<a href="#source-{n}" class="citation">[{n}]</a>' if n in numbers else match.group(0)

    return mark_safe(_CITATION.sub(link, escaped))


def result_table(data: dict) -> ResultTable | None:
    columns, rows = data.get("columns"), data.get("rows")
    if not isinstance(columns, list) or not columns or not isinstance(rows, list):
        return None
    width = len(columns)
    shown = [
        [cell(row[i]) if i < len(row) else Cell("", "") for i in range(width)]
        for row in rows[:TABLE_ROWS] if isinstance(row, list)
    ]
    count = data.get("row_count")
    total = count if isinstance(count, int) else len(rows)
    return ResultTable(columns=[cell_text(c) for c in columns], rows=shown, total=max(total, len(rows)),
                       truncated_by_source=data.get("truncated") is True)


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def result_chart(data: dict) -> tuple[SafeString, str] | None:
    """A bar chart of the first numeric column against the first column, when the result has
    one (the worker's chart spec may be missing on older sessions: decided from the rows)."""
    columns, rows = data.get("columns"), data.get("rows")
    if not isinstance(columns, list) or len(columns) < 2 or not isinstance(rows, list) or not rows:
        return None
    rows = [row for row in rows if isinstance(row, list) and len(row) == len(columns)]
    numeric = next((i for i in range(1, len(columns))
                    if rows and all(_numeric(r[i]) or r[i] is None for r in rows) and any(_numeric(r[i]) for r in rows)), None)
    if numeric is None:
        return None
    bars = [(cell_text(r[0]), float(r[numeric]) if _numeric(r[numeric]) else None) for r in rows[:CHART_BARS]]
    caption = f"{cell_text(columns[numeric])} by {cell_text(columns[0])}"
    if len(rows) > CHART_BARS:
        caption += f" (first {CHART_BARS} of {len(rows)} rows)"
    return horizontal_bars_svg(bars, label=caption), caption


def source_rows(session: Session) -> list[dict]:
    """The cited sources with a link each: a case to its page, a document chunk to its document."""
    sources = _answer_sources(session)
    chunk_ids = [int(s["id"]) for s in sources if s.get("type") == "document" and str(s.get("id", "")).isdigit()]
    documents = dict(DocumentChunk.objects.filter(pk__in=chunk_ids).values_list("pk", "document_id")) if chunk_ids else {}
    shown = []
    for source in sources:
        kind, ident = str(source.get("type") or ""), str(source.get("id") or "")
        url = ""
        if kind == "case" and ident:
            url = reverse("admin:casebank_case_change", args=[ident])
        elif kind == "document" and ident.isdigit() and int(ident) in documents:
            url = reverse("admin:agents_document_change", args=[documents[int(ident)]])
        elif kind == "data":
            url = "#result"
        shown.append({"n": source.get("n"), "type": kind, "title": cell_text(source.get("title") or ident), "url": url})
    return shown


def error_rows(session: Session) -> list[tuple[str, str, str]]:
    rows = []
    for name, error in (session.errors or {}).items() if isinstance(session.errors, dict) else []:
        if isinstance(error, dict):
            rows.append((str(name), cell_text(error.get("type") or ""), cell_text(error.get("message") or "")))
        else:
            rows.append((str(name), "", cell_text(error)))
    return rows


def _offset(moment: datetime, start: datetime) -> str:
    seconds = (moment - start).total_seconds()
    return f"+{seconds:,.2f} s" if seconds < 600 else f"+{seconds / 60:,.1f} min"


def _list_of(data: dict, key: str) -> list:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _dict_of(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _event_message(event: SessionEvent) -> tuple[str, str]:
    """(agent, message) for one event: what a reader needs, not the raw JSON."""
    data = event.data if isinstance(event.data, dict) else {}
    kind = event.kind
    if kind == "agent":
        outcome = "ok" if data.get("ok") else f"failed: {data.get('error') or ''}"
        return str(data.get("agent") or ""), f"{outcome} in {data.get('ms', '?')} ms"
    if kind == "plan":
        steps = _list_of(data, "steps")
        return "", f"plan from {data.get('source') or '?'}: {len(steps)} step(s)"
    if kind == "select":
        decisions = _list_of(data, "decisions")
        return "", "; ".join(cell_text(d) if not isinstance(d, dict) else
                             ", ".join(f"{k} {cell_text(v)}" for k, v in d.items() if v not in ("", None, [], {}))
                             for d in decisions)
    if kind == "results":
        agents = _dict_of(data, "agents")
        return "", ", ".join(f"{name} {'ok' if ok else 'failed'}" for name, ok in agents.items())
    if kind == "evaluation":
        scores = _dict_of(data, "scores")
        shown = ", ".join(f"{name} {cell_text(score)}" for name, score in scores.items())
        return "", f"{'passed' if data.get('passed') else 'not passed'}; {shown}".strip("; ")
    if kind == "budget_wait":
        return "", f"waited {cell_text(data.get('wait_s'))} s for the {cell_text(data.get('budget') or '?')} LLM budget"
    if kind == "logged":
        return "", "execution log written"
    if kind == "phase":
        parts = [f"{key} {cell_text(value)}" for key, value in data.items() if key in ("status", "attempt", "passed", "error", "query")]
        return "", ", ".join(parts)
    return "", json.dumps(data, default=str, ensure_ascii=False)


def timeline(session: Session) -> tuple[list[TimelineEntry], int]:
    """The events in order, the answer's streamed pieces folded into one line; (entries, left out)."""
    events = list(session.events.order_by("sequence")[: TIMELINE_EVENTS + 1])
    hidden = max(0, session.events.count() - TIMELINE_EVENTS) if len(events) > TIMELINE_EVENTS else 0
    entries: list[TimelineEntry] = []
    pieces = 0
    for event in events[:TIMELINE_EVENTS]:
        if event.kind == "answer_delta":
            pieces += 1
            if pieces > 1:
                entries[-1].message = f"answer streamed in {pieces} pieces"
                continue
            message = "answer streamed in 1 piece"
            agent = ""
        else:
            pieces = 0
            agent, message = _event_message(event)
        message = message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"
        entries.append(TimelineEntry(event.sequence, _offset(event.created_at, session.created_at), event.phase,
                                     event.kind, agent, message))
    return entries, hidden


def related_links(session: Session) -> list[tuple[str, str]]:
    """(label, url): the execution log(s) of this session, the case and version it used, the case it made."""
    logs = reverse("admin:reflection_executionlog_changelist")
    links = [("Execution logs of this session", f"{logs}?session_id={session.pk}")]
    if session.log_id:
        links.append(("Its execution log", reverse("admin:reflection_executionlog_change", args=[session.log_id])))
    if session.case_id:
        case_url = reverse("admin:casebank_case_change", args=[session.case_id])
        version = f", version {session.case_version}" if session.case_version else ""
        links.append((f"Case used{version}", case_url))
        links.append(("That case's logs", f"{logs}?case__id__exact={session.case_id}"))
    if session.created_case_id:
        links.append(("Case created from this session",
                      reverse("admin:casebank_case_change", args=[session.created_case_id])))
    return links


def session_page(session: Session) -> SessionPage:
    data = _data(session)
    sources = source_rows(session)
    numbers = {s["n"] for s in sources if isinstance(s["n"], int)}
    page = SessionPage(answer=answer_html(session.answer, numbers), sources=sources, errors=error_rows(session),
                       links=related_links(session))
    page.data_sql = str(data.get("sql") or session.sql or "")
    page.table = result_table(data)
    chart = result_chart(data)
    if chart is not None:
        page.chart, page.chart_caption = chart
    page.timeline, page.timeline_hidden = timeline(session)
    return page

