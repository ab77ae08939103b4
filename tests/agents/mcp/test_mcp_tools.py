"""Each tool over Streamable HTTP with the SDK's own client, against cases and logs in the database."""
from __future__ import annotations

import uuid

import pytest
from mcp import ClientSession

from casebank.access.services import hash_api_key
from casebank.cases import services as case_services
from casebank.models import ApiKey, Case, CaseStatus
from reflection.analysis import services as analysis_services
from reflection.models import ExecutionLog
from tests.agents.mcp.conftest import call, error_text, with_session

pytestmark = pytest.mark.django_db(transaction=True)


def _with_record(case: Case, *, success_rate: float, runs: int, status: str = CaseStatus.ACTIVE) -> Case:
    Case.objects.filter(pk=case.pk).update(success_rate=success_rate, run_count=runs, status=status)
    case.refresh_from_db()
    return case


def test_it_lists_the_four_tools_with_bounded_typed_inputs(mcp_url, make_key):
    async def tools(session: ClientSession):
        return (await session.list_tools()).tools

    listed = {tool.name: tool for tool in with_session(mcp_url, make_key(), tools)}
    assert set(listed) == {"search_cases", "get_case_plan", "log_run", "get_case_analysis"}
    search = listed["search_cases"].input_schema["properties"]
    assert search["k"]["maximum"] == 20 and search["k"]["minimum"] == 1 and search["query"]["maxLength"] == 2000
    assert listed["log_run"].input_schema["required"] == ["case_id", "success", "duration_ms"]
    assert all(tool.output_schema for tool in listed.values())


def test_search_cases_returns_successes_as_examples_and_failures_as_warnings(mcp_url, make_key, make_case):
    good = _with_record(make_case(title="Monthly revenue by region"), success_rate=0.92, runs=40)
    weak = _with_record(
        make_case(title="Revenue by region, quarterly", query="Show quarterly revenue by region"),
        success_rate=0.3, runs=20,
    )
    flagged = _with_record(
        make_case(title="Revenue per region last year", query="Revenue per region for last year"),
        success_rate=0.7, runs=10, status=CaseStatus.WARNING,
    )
    make_case(title="Reset a customer's password", query="How do I reset a customer password", category="support")

    result = call(mcp_url, make_key(), "search_cases", {"query": "revenue by region", "k": 3})

    assert not result.is_error, error_text(result)
    found = result.structured_content
    assert [case["id"] for case in found["examples"]] == [str(good.pk)]
    assert {case["id"] for case in found["warnings"]} == {str(weak.pk), str(flagged.pk)}
    example = found["examples"][0]
    assert example["success_rate"] == 0.92 and example["runs"] == 40 and example["plan"] == good.plan
    reasons = {case["id"]: case["why_warning"] for case in found["warnings"]}
    assert "30%" in reasons[str(weak.pk)] and "warning" in reasons[str(flagged.pk)]
    assert len(found["examples"]) + len(found["warnings"]) == 3  # k bounds both lists together


def test_get_case_plan_returns_the_current_version_and_counts_a_use(mcp_url, make_key, make_case):
    case = make_case()
    case = case_services.case_update(
        case=case, actor="tester", reason="manual",
        plan=[{"agent": "data_analysis", "action": "SQL by month"}, {"agent": "supervisor", "action": "Summarise"}],
    )

    result = call(mcp_url, make_key(), "get_case_plan", {"case_id": str(case.pk)})

    assert not result.is_error, error_text(result)
    plan = result.structured_content
    assert plan["version"] == 2 and plan["steps"] == case.plan and plan["warning"] is False
    case.refresh_from_db()
    assert case.usage_count == 1


def test_get_case_plan_refuses_a_case_pending_review(mcp_url, make_key, make_case):
    case = make_case()
    Case.objects.filter(pk=case.pk).update(review_state="pending")

    result = call(mcp_url, make_key(), "get_case_plan", {"case_id": str(case.pk)})

    assert "pending review" in error_text(result) and "approved" in error_text(result)


def test_log_run_stores_the_outcome_once_per_run_id(mcp_url, make_key, make_case):
    case = make_case()
    run_id = str(uuid.uuid4())
    arguments = {"case_id": str(case.pk), "success": False, "duration_ms": 1234.6, "error_type": "TimeoutError",
                 "error_message": "SQL query exceeded 5000 ms", "tokens_in": 800, "tokens_out": 90,
                 "version": 1, "run_id": run_id}
    key = make_key()

    first = call(mcp_url, key, "log_run", arguments)
    again = call(mcp_url, key, "log_run", arguments)

    assert not first.is_error, error_text(first)
    assert first.structured_content == {"run_id": run_id, "case_id": str(case.pk), "case_version": 1, "stored": True}
    assert again.structured_content["stored"] is False
    log = ExecutionLog.objects.get()
    assert (log.success, log.execution_time_ms, log.error_type, log.tokens_in, log.tokens_out, log.case_version) == (
        False, 1235, "TimeoutError", 800, 90, 1)
    assert log.api_key_id == ApiKey.objects.get(key_hash=hash_api_key(key)).pk  # owned by the caller, as over REST


def test_log_run_names_the_argument_the_ingestion_refuses(mcp_url, make_key, make_case):
    case = make_case()

    result = call(mcp_url, make_key(), "log_run",
                  {"case_id": str(case.pk), "success": True, "duration_ms": 10, "version": 5})

    assert "version: The case is only at version 1." in error_text(result)
    assert not ExecutionLog.objects.exists()


def test_get_case_analysis_reads_the_stored_analysis(mcp_url, make_key, make_case):
    case = make_case()
    key = make_key(scopes=["cases:read", "reflection"])
    for outcome in (True, True, False, True):
        call(mcp_url, make_key(scopes=["logs:write"]), "log_run",
             {"case_id": str(case.pk), "success": outcome, "duration_ms": 100})
    analysis_services.case_analysis_record(case_id=case.pk)

    result = call(mcp_url, key, "get_case_analysis", {"case_id": str(case.pk)})

    assert not result.is_error, error_text(result)
    found = result.structured_content
    assert found["analysis"]["total_executions"] == 4 and found["analysis"]["success_rate"] == 0.75
    assert [point["total_executions"] for point in found["history"]] == [4]


def test_get_case_analysis_of_a_case_never_analysed_is_empty(mcp_url, make_key, make_case):
    case = make_case()

    result = call(mcp_url, make_key(scopes=["reflection"]), "get_case_analysis", {"case_id": str(case.pk)})

    assert result.structured_content == {"case_id": str(case.pk), "analysed_at": None, "analysis": None, "history": []}


def test_a_case_under_experiment_serves_each_client_the_version_of_its_arm(mcp_url, make_key, make_case, reviewer):
    from casebank.access.services import hash_api_key
    from casebank.models import ApiKey
    from reflection.experiments.selectors import resolve_plan
    from tests.reflection.experiments.support import approved_experiment
    from tests.reflection.suggestion_helpers import PLAN, REVISED

    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    by_arm: dict[str | None, str] = {}
    while len(by_arm) < 2:  # keys fall into arms by hash: make keys until both arms have one
        plain = make_key()
        pk = ApiKey.objects.get(key_hash=hash_api_key(plain)).pk
        by_arm.setdefault(resolve_plan(case=case, key=f"api-key:{pk}").arm, plain)

    candidate = call(mcp_url, by_arm["candidate"], "get_case_plan", {"case_id": str(case.pk)}).structured_content
    current = call(mcp_url, by_arm["current"], "get_case_plan", {"case_id": str(case.pk)}).structured_content
    found = call(mcp_url, by_arm["candidate"], "search_cases", {"query": case.query, "k": 1}).structured_content

    assert (candidate["version"], candidate["steps"], candidate["arm"]) == (2, REVISED, "candidate")
    assert candidate["experiment_id"] == experiment.pk
    assert (current["version"], current["steps"], current["arm"]) == (1, PLAN, "current")
    assert [(c["version"], c["plan"]) for c in found["examples"] + found["warnings"]] == [(2, REVISED)]
