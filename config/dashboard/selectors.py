"""The dashboard's figures, each with the admin list it links to.

No query here counts the whole log table: logs are read only over time-bounded ranges of
their indexes (`log_ingested_idx` for ingestion per minute, `log_created_id_idx` for the last
24 hours), and the bank-wide trend comes from the stored analyses of recent reflection runs.
The other tables (cases, suggestions, runs, LLM calls, sessions) are counted through their
status or time indexes."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMinute
from django.urls import reverse
from django.utils import timezone

from agents.models import Session, SessionStatus
from casebank.models import Case, CaseStatus, ReviewState
from core.cache import layered_get_or_set
from reflection.models import (
    CaseAnalysis,
    ExecutionLog,
    LLMCall,
    LLMOutcome,
    ReflectionRun,
    ReflectionRunStatus,
    Suggestion,
    SuggestionStatus,
    Verification,
)

# Runs in the bank-wide success-rate trend (each run: the cases it analysed, their windows).
TREND_RUNS = 20
INGESTION_MINUTES = 60
RECENT = timedelta(hours=24)
CACHE_KEY = "dashboard:figures:v1"


@dataclass(frozen=True)
class Figure:
    """One number on the dashboard, what it counts, and the admin list showing those rows."""

    key: str
    label: str
    value: int | float | str
    url: str
    help: str = ""
    # Draw attention: a person is needed, or the loop is unhealthy.
    alert: bool = False

    @property
    def shown(self) -> str:
        """The value as the page prints it: counts with thousands separators."""
        return f"{self.value:,}" if isinstance(self.value, int) else str(self.value)


@dataclass
class Dashboard:
    now: datetime
    needs_person: list[Figure] = field(default_factory=list)
    health: list[Figure] = field(default_factory=list)
    ingestion_per_minute: list[tuple[datetime, int]] = field(default_factory=list)
    # (finished_at of a run, success rate of the cases it analysed, None)
    trend: list[tuple[datetime, float | None, float | None]] = field(default_factory=list)
    llm: dict = field(default_factory=dict)
    sessions: list[Figure] = field(default_factory=list)

    def figure(self, key: str) -> Figure:
        return next(f for f in self.needs_person + self.health + self.sessions if f.key == key)


def _list(name: str, **params: object) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _since(moment: datetime) -> str:
    # The admin's own date filter format (DateFieldListFilter), so the list shows the same rows.
    return moment.strftime("%Y-%m-%d %H:%M:%S%z")


def needs_person(*, now: datetime) -> list[Figure]:
    suggestions = Suggestion.objects.aggregate(
        pending=Count("id", filter=Q(status=SuggestionStatus.PENDING)),
        regressed=Count("id", filter=Q(verification=Verification.REGRESSED, status=SuggestionStatus.APPROVED)),
        deciding=Count("id", filter=Q(verification=Verification.PENDING, status=SuggestionStatus.APPROVED)),
    )
    new_cases = Case.objects.filter(review_state=ReviewState.PENDING).count()
    return [
        Figure("pending_suggestions", "Suggestions to review", suggestions["pending"],
               _list("reflection_pendingsuggestion"), "Improvement suggestions waiting for approve or reject.",
               alert=suggestions["pending"] > 0),
        Figure("new_cases", "New cases to review", new_cases, _list("casebank_pendingcase"),
               "Cases filed by successful sessions; not retrieved until approved.", alert=new_cases > 0),
        Figure("regressions", "Regressions", suggestions["regressed"],
               _list("reflection_suggestion", status__exact=SuggestionStatus.APPROVED,
                     verification__exact=Verification.REGRESSED),
               "Applied suggestions whose case did significantly worse afterwards: roll back or keep.",
               alert=suggestions["regressed"] > 0),
        Figure("experiments_deciding", "Experiments deciding", suggestions["deciding"],
               _list("reflection_suggestion", status__exact=SuggestionStatus.APPROVED,
                     verification__exact=Verification.PENDING),
               "Applied suggestions still collecting runs before verification decides."),
    ]


def health(*, now: datetime) -> list[Figure]:
    since = now - RECENT
    warning = Case.objects.filter(status=CaseStatus.WARNING).count()
    # Time-bounded range of log_created_id_idx: the last 24 hours only, never the whole table.
    recent = ExecutionLog.objects.filter(created_at__gte=since, created_at__lte=now).aggregate(
        runs=Count("id"), successes=Count("id", filter=Q(success=True)))
    runs = ReflectionRun.objects.filter(created_at__gte=since).aggregate(
        total=Count("id"), failed=Count("id", filter=Q(status=ReflectionRunStatus.FAILED)))
    rate = f"{recent['successes'] / recent['runs']:.1%}" if recent["runs"] else "—"
    return [
        Figure("cases_warning", "Cases in warning", warning, _list("casebank_case", status__exact=CaseStatus.WARNING),
               "Success rate below 50 % in their last analysis, or a significant recent drop.", alert=warning > 0),
        Figure("logs_24h", "Runs logged, last 24 h", recent["runs"],
               _list("reflection_executionlog", created_at__gte=_since(since)),
               "Execution logs whose run happened in the last 24 hours."),
        Figure("success_24h", "Success rate, last 24 h", rate,
               _list("reflection_executionlog", created_at__gte=_since(since), success__exact=0),
               "Successes / runs logged in the last 24 hours; the link lists the failures."),
        Figure("reflection_runs_24h", "Reflection runs, last 24 h", runs["total"],
               _list("reflection_reflectionrun", created_at__gte=_since(since)), "Batch analyses started."),
        Figure("reflection_runs_failed_24h", "Failed reflection runs, last 24 h", runs["failed"],
               _list("reflection_reflectionrun", created_at__gte=_since(since), status__exact=ReflectionRunStatus.FAILED),
               alert=runs["failed"] > 0),
    ]


def ingestion_per_minute(*, now: datetime, minutes: int = INGESTION_MINUTES) -> list[tuple[datetime, int]]:
    """Logs stored per minute, oldest first, every minute listed. A range of log_ingested_idx
    (an index-only scan on PostgreSQL): reads only the last hour's entries."""
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    counts = {
        minute: n for minute, n in
        ExecutionLog.objects.filter(ingested_at__gte=start).annotate(minute=TruncMinute("ingested_at"))
        .values("minute").annotate(n=Count("id")).values_list("minute", "n")
    }
    return [(start + timedelta(minutes=i), counts.get(start + timedelta(minutes=i), 0)) for i in range(minutes)]


def bank_trend(*, runs: int = TREND_RUNS) -> list[tuple[datetime, float | None, float | None]]:
    """Per completed reflection run: successes / runs over the analyses it stored (the cases it
    analysed, each over its window). Reads the stored analyses by `run_id`, not the logs."""
    recent = list(
        ReflectionRun.objects.filter(status=ReflectionRunStatus.COMPLETED, finished_at__isnull=False)
        .order_by("-finished_at").values_list("pk", "finished_at")[:runs]
    )
    totals = {
        row["run_id"]: row for row in
        CaseAnalysis.objects.filter(run_id__in=[pk for pk, _ in recent]).values("run_id")
        .annotate(total=Sum("total_executions"), ok=Sum("successes"))
    }
    points: list[tuple[datetime, float | None, float | None]] = []
    for pk, finished in reversed(recent):
        row = totals.get(pk)
        if row and row["total"] and finished is not None:
            points.append((finished, row["ok"] / row["total"], None))
    return points


def llm_usage(*, now: datetime) -> dict:
    since = now - RECENT
    calls = LLMCall.objects.filter(created_at__gte=since).aggregate(
        calls=Count("id"), failed=Count("id", filter=~Q(outcome=LLMOutcome.OK)),
        last_minute=Count("id", filter=Q(created_at__gte=now - timedelta(minutes=1))),
        tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost=Sum("cost_usd"),
    )
    sessions = Session.objects.filter(created_at__gte=since).aggregate(
        tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost=Sum("cost_usd"))
    budget = settings.LLM_DAILY_BUDGET_USD
    spend = (calls["cost"] or 0.0) + (sessions["cost"] or 0.0)
    return {
        "calls": calls["calls"],
        "failed": calls["failed"],
        "last_minute": calls["last_minute"],
        "per_minute_budget": settings.LLM_CALLS_PER_MINUTE,
        "tokens": (calls["tokens_in"] or 0) + (calls["tokens_out"] or 0)
        + (sessions["tokens_in"] or 0) + (sessions["tokens_out"] or 0),
        "spend_usd": spend,
        "budget_usd": budget,
        "budget_share": spend / budget if budget else None,
        "calls_url": _list("reflection_llmcall", created_at__gte=_since(since)),
        "failed_url": _list("reflection_llmcall", created_at__gte=_since(since), outcome__exact=LLMOutcome.ERROR),
    }


def sessions_by_outcome(*, now: datetime) -> list[Figure]:
    since = now - RECENT
    counts = dict(
        Session.objects.filter(created_at__gte=since).values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return [
        Figure(f"sessions_{status}", label, counts.get(status, 0),
               _list("agents_session", status__exact=status, created_at__gte=_since(since)),
               alert=status == SessionStatus.FAILED and counts.get(status, 0) > 0)
        for status, label in SessionStatus.choices
    ]


def dashboard_cached() -> Dashboard:
    """The figures of at most `DASHBOARD_CACHE_SECONDS` ago (`Dashboard.now` says when), shared
    by every replica: a busy page reads the log indexes once per period, not once per view."""
    seconds = settings.DASHBOARD_CACHE_SECONDS
    if seconds <= 0:
        return dashboard()
    return layered_get_or_set(CACHE_KEY, dashboard, seconds)


def dashboard(*, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    board = Dashboard(now=now)
    board.needs_person = needs_person(now=now)
    board.health = health(now=now)
    board.sessions = sessions_by_outcome(now=now)
    board.ingestion_per_minute = ingestion_per_minute(now=now)
    board.trend = bank_trend()
    board.llm = llm_usage(now=now)
    return board
