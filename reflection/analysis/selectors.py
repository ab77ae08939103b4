"""Reads of the execution log and of stored analyses."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from uuid import UUID

from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from reflection.analysis.types import AnalysisPoint, SuggestionRefusal
from reflection.models import CaseAnalysis, CaseReflectionState, DailyCaseRollup, ExecutionLog


def case_analysis_latest(*, case_id: UUID) -> CaseAnalysis | None:
    """The newest stored analysis of a case, with its full JSON (analysis_case_created_idx)."""
    return CaseAnalysis.objects.filter(case_id=case_id).order_by("-created_at").first()


def case_analysis_trend(*, case_id: UUID, limit: int) -> list[AnalysisPoint]:
    """The newest `limit` analyses' headline figures, newest first; never the big JSON."""
    return list(
        CaseAnalysis.objects.filter(case_id=case_id)
        .order_by("-created_at")
        .values("window_days", "total_executions", "success_rate", "weighted_success_rate", "latency_p95_ms",
                analysed_at=F("created_at"))[:limit]
    )


def case_suggestion_refusal(*, case_id: UUID) -> SuggestionRefusal | None:
    """Why the latest proposal for the case was refused as no news, if one was since the last
    suggestion (`reflection.suggestions.novelty`)."""
    state = (CaseReflectionState.objects.filter(case_id=case_id, suggestion_refused_at__isnull=False)
             .only("suggestion_refused", "suggestion_refused_at").first())
    if state is None or state.suggestion_refused_at is None:
        return None
    return {"reason": state.suggestion_refused, "at": state.suggestion_refused_at}


@dataclass(frozen=True)
class DayOutcome:
    day: date
    runs: int
    successes: int

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.runs if self.runs else None


def case_daily_outcomes(*, case_id: UUID, days: int = 30, now: datetime | None = None) -> list[DayOutcome]:
    """Runs and successes of a case per UTC day, the last `days` days (today included), oldest
    first, every day listed. Raw logs are grouped in the database ((case, created_at) index);
    days that retention has rolled up come from their summaries."""
    now = (now or timezone.now()).astimezone(dt_timezone.utc)
    first = now.date() - timedelta(days=days - 1)
    totals = {first + timedelta(days=n): [0, 0] for n in range(days)}
    raw = (
        ExecutionLog.objects.filter(case_id=case_id, created_at__gte=datetime.combine(first, time.min, dt_timezone.utc),
                                    created_at__lte=now)
        .annotate(day=TruncDate("created_at", tzinfo=dt_timezone.utc)).values("day")
        .annotate(runs=Count("id"), successes=Count("id", filter=Q(success=True)))
        .values_list("day", "runs", "successes")
    )
    summarised = DailyCaseRollup.objects.filter(case_id=case_id, day__gte=first, day__lte=now.date()).values_list(
        "day", "runs", "successes"
    )
    for rows in (raw, summarised):
        for day, runs, successes in rows:
            totals[day][0] += runs
            totals[day][1] += successes
    return [DayOutcome(day, runs, successes) for day, (runs, successes) in totals.items()]
