"""Reads of the execution log."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import F, QuerySet

from reflection.models import CaseAnalysis, ExecutionLog


def log_list(
    *,
    case: UUID | None = None,
    success: bool | None = None,
    error_type: str | None = None,
    session: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[ExecutionLog]:
    logs = ExecutionLog.objects.all()
    if case is not None:
        logs = logs.filter(case_id=case)
    if success is not None:
        logs = logs.filter(success=success)
    if error_type:
        logs = logs.filter(error_type=error_type)
    if session is not None:
        logs = logs.filter(session_id=session)
    if created_after is not None:
        logs = logs.filter(created_at__gte=created_after)
    if created_before is not None:
        logs = logs.filter(created_at__lt=created_before)
    return logs


def case_analysis_latest(*, case_id: UUID) -> CaseAnalysis | None:
    """The newest stored analysis of a case, with its full JSON (analysis_case_created_idx)."""
    return CaseAnalysis.objects.filter(case_id=case_id).order_by("-created_at").first()


def case_analysis_trend(*, case_id: UUID, limit: int) -> list[dict]:
    """The newest `limit` analyses' headline figures, newest first; never the big JSON."""
    return list(
        CaseAnalysis.objects.filter(case_id=case_id)
        .order_by("-created_at")
        .values("window_days", "total_executions", "success_rate", "weighted_success_rate", "latency_p95_ms",
                analysed_at=F("created_at"))[:limit]
    )
