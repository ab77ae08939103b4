"""A bank with something in every figure of the dashboard, and rows just outside each window.

Shared by the dashboard's client tests and its browser test (tests/e2e)."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from agents.models import Session, SessionStatus
from casebank.cases import services as case_services
from casebank.models import CaseStatus
from reflection.models import (
    CaseAnalysis,
    LLMCall,
    LLMOutcome,
    ReflectionRun,
    ReflectionRunStatus,
    SuggestionStatus,
    Verification,
)
from tests.reflection.factories import add_logs
from tests.reflection.suggestion_helpers import make_suggestion


def fill_loop(make_case) -> dict:
    now = timezone.now()
    weak = make_case(title="Weak case")
    other = make_case(title="Other case")
    case_services.case_set_status(case=weak, status=CaseStatus.WARNING, actor="t", reason="test")
    make_case(title="Filed by a session", review_state="pending")
    for _ in range(2):
        make_suggestion(weak)
    make_suggestion(other, status=SuggestionStatus.APPROVED, verification=Verification.REGRESSED)
    make_suggestion(other, status=SuggestionStatus.APPROVED, verification=Verification.PENDING)
    make_suggestion(other, status=SuggestionStatus.REJECTED)
    add_logs(weak, count=3, success=True, now=now, age=timedelta(hours=2))
    add_logs(weak, count=2, success=False, error_type="TimeoutError", now=now, age=timedelta(hours=3))
    add_logs(other, count=4, success=False, now=now, age=timedelta(days=3))  # outside the 24 h
    ReflectionRun.objects.create(status=ReflectionRunStatus.FAILED)
    run = ReflectionRun.objects.create(status=ReflectionRunStatus.COMPLETED, finished_at=now)
    CaseAnalysis.objects.create(case=weak, run=run, window_days=30, total_executions=10, successes=4,
                                success_rate=0.4, confidence="ok", result={})
    CaseAnalysis.objects.create(case=other, run=run, window_days=30, total_executions=30, successes=24,
                                success_rate=0.8, confidence="ok", result={})
    LLMCall.objects.create(purpose="suggestion", outcome=LLMOutcome.OK, tokens_in=100, tokens_out=20, cost_usd=0.5)
    LLMCall.objects.create(purpose="suggestion", outcome=LLMOutcome.ERROR)
    LLMCall.objects.create(purpose="suggestion", outcome=LLMOutcome.OK, created_at=now - timedelta(days=2))
    Session.objects.create(query="q1", status=SessionStatus.COMPLETED, tokens_in=10, tokens_out=5, cost_usd=0.25)
    Session.objects.create(query="q2", status=SessionStatus.FAILED)
    Session.objects.create(query="q3", status=SessionStatus.FAILED, created_at=now - timedelta(days=2))
    return {"weak": weak, "other": other}
