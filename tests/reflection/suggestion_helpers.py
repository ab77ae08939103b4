"""Shared builders for the improvement-loop tests: logs with known outcomes, suggestions."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from reflection.models import ExecutionLog, Suggestion, SuggestionSource

PLAN = [
    {"agent": "data_analysis", "action": "SQL aggregate by month and region"},
    {"agent": "report", "action": "Chart the result"},
]
REVISED = [
    {"agent": "data_analysis", "action": "SQL aggregate by month and region with a 30 s statement timeout"},
    {"agent": "report", "action": "Chart the result"},
]


def add_logs(case, *, successes: int, failures: int, version: int | None = None,
             error_type: str = "TimeoutError", message: str = "query 4711 timed out after 30 s",
             latency_ms: int = 800) -> None:
    now = timezone.now()
    version = version or case.version
    logs = [
        ExecutionLog(case=case, case_version=version, success=True, execution_time_ms=latency_ms,
                     created_at=now - timedelta(minutes=i + 1))
        for i in range(successes)
    ] + [
        ExecutionLog(case=case, case_version=version, success=False, error_type=error_type,
                     error_message=message, execution_time_ms=latency_ms,
                     created_at=now - timedelta(minutes=i + 1, seconds=30))
        for i in range(failures)
    ]
    ExecutionLog.objects.bulk_create(logs)


def make_suggestion(case, **fields) -> Suggestion:
    values = {
        "case": case,
        "base_version": case.version,
        "source": SuggestionSource.RULES,
        "rationale": "Timeouts dominate the failures.",
        "changes": [{"what": "Add a statement timeout", "why": "62% of runs time out"}],
        "current_plan": case.plan,
        "revised_plan": REVISED,
        "expected_effect": "Fewer timeouts.",
        "confidence": 0.5,
        "evidence": {
            "analysis": {"success_rate": 0.38, "total_executions": 130},
            "common_errors": [{"error_type": "TimeoutError", "count": 80, "percentage": 61.5,
                               "example": "query 4711 timed out after 30 s", "templates": ["query <n> timed out after <n> s"]}],
            "failing_examples": [{"error_type": "TimeoutError", "error_message": "query 4711 timed out after 30 s"}],
            "similar_successes": [],
            "similar_failures": [],
        },
    }
    values.update(fields)
    suggestion = Suggestion(**values)
    suggestion.full_clean()
    suggestion.save()
    return suggestion
