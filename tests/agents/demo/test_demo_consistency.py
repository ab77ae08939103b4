"""Issue #19: the demo's figures agree with each other, and it shows every feature at first sight."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from agents.demo import cases as demo_cases
from casebank.consolidation import services as consolidation
from reflection.suggestions.generation import rule_based_proposal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=dt_timezone.utc)
# Read independently of the demo's own parser: "... of 5000 ms", "... after 12 s".
LIMIT = re.compile(r"(\d+) (ms|s)\b")


@pytest.fixture(scope="module")
def payloads() -> list[dict]:
    return demo_cases.demo_log_payloads(now=NOW)


def test_it_logs_no_timeout_shorter_than_its_stated_limit(payloads):
    timeouts = [p for p in payloads if p["error_type"] == "TimeoutError"]
    assert len(timeouts) > 50
    for payload in timeouts:
        value, unit = LIMIT.search(payload["error_message"]).groups()
        limit_ms = int(value) * (1 if unit == "ms" else 1000)
        assert payload["execution_time_ms"] >= limit_ms, payload["error_message"]


def test_it_leaves_some_cases_unused_for_more_than_a_week(payloads):
    idle = {str(demo_cases.demo_case_id(slug)) for slug in demo_cases.IDLE}
    ages = [NOW - datetime.fromisoformat(p["created_at"]) for p in payloads if p["case_id"] in idle]
    assert len(ages) > 100 and min(ages) > timedelta(days=7)
    weak = [p for p in payloads if p["case_id"] == str(demo_cases.demo_case_id(demo_cases.IDLE_WEAK))]
    # More than 10 uses and under 30 % success: consolidation's low-performance rule applies.
    assert len(weak) > 10 and sum(p["success"] for p in weak) / len(weak) < 0.3


@pytest.mark.django_db
def test_it_gives_consolidation_a_candidate_after_seeding():
    demo_cases.seed_cases()
    demo_cases.seed_logs(count=3_000)
    from reflection.analysis import services as analysis_services

    analysis_services.case_analysis_record(case_id=demo_cases.demo_case_id(demo_cases.IDLE_WEAK))
    actions = consolidation.consolidation_plan()
    assert str(demo_cases.demo_case_id(demo_cases.IDLE_WEAK)) in {action.case_id for action in actions}


def test_the_rule_based_timeout_and_latency_fixes_leave_the_summary_step_alone():
    class Plan:
        version = 1
        plan = [
            {"agent": "information_retrieval", "action": "Find documents about churn"},
            {"agent": "data_analysis", "action": "Query the analytics database"},
            {"agent": "supervisor", "action": "Summarise the findings for the user"},
        ]

    analysis = {"common_errors": [{"error_type": "TimeoutError", "count": 80, "percentage": 40.0,
                                   "templates": [{"template": "query exceeded statement timeout of <n> ms", "count": 80}]}],
                "latency_ms": {"p95": 9000}, "slow": True, "success_rate": 0.4, "successes": 80, "total_executions": 200}
    proposal = rule_based_proposal(case=Plan(), analysis=analysis, reason="test")
    retrieve, query, summary = proposal.revised_plan
    assert retrieve["retry"] == query["retry"] == {"attempts": 3, "backoff": "exponential"}
    assert "retry" not in summary and "timeout_s" not in summary
    # Slow too: caching and a latency bound go to the same steps, not to the summary.
    assert retrieve["cache"] is query["cache"] is True
    assert "cache" not in summary and "max_latency_ms" not in summary


@pytest.mark.django_db(transaction=True)  # the session's workers run in threads, on their own connections
def test_seed_demo_leaves_a_finished_session_with_an_answer_and_rows(tmp_path, settings):
    from django.core.management import call_command

    from agents.sessions.models import Session, SessionStatus

    settings.ANALYTICS_DATABASE_URL = f"sqlite:///{tmp_path / 'analytics.sqlite3'}"
    call_command("seed_demo", "--logs", "300", "--no-progress")
    call_command("seed_demo", "--logs", "300", "--no-progress")  # idempotent: still one session
    session = Session.objects.get(created_by="seed_demo")
    assert session.status == SessionStatus.COMPLETED and session.passed, session.errors
    assert session.case_id == demo_cases.demo_case_id("rev-region") and session.plan_source == "case"
    data = session.results["data_analysis"]
    assert data["columns"] == ["region", "revenue"] and len(data["rows"]) == 4
    assert "region" in session.answer and "[1]" in session.answer
