"""The tools' reads, plain sync functions (the server runs them off the event loop): case
search with examples and warnings, the plan to run, the stored analysis."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from agents.mcp.outputs import AnalysisPoint, CaseAnalysisResult, CasePlan, CaseSearchResult, FoundCase
from casebank.cases import read_cache, services
from casebank.cases.plans import ServedPlan, served_plans
from casebank.cases.selectors import case_get
from casebank.models import ApiKey, Case, CaseStatus, ReviewState
from casebank.search.ranking import WARNING_BELOW, role_of
from casebank.search.selectors import SearchHit, case_search
from core import task_queue
from core.errors import InvalidInput, NotFound
from reflection.analysis import selectors as analyses


def _case(case_id: UUID) -> Case:
    try:
        return case_get(case_id)
    except NotFound:
        raise NotFound(f"No case with id {case_id}.") from None


def why_warning(*, status: str, success_rate: float | None, runs: int) -> str:
    if status == CaseStatus.WARNING:
        return "Reflection put this case in warning: its recent runs fail too often."
    if success_rate is not None and success_rate < WARNING_BELOW:
        return f"Success rate {success_rate:.0%} over {runs} runs, below {WARNING_BELOW:.0%}."
    return ""


def _found(hit: SearchHit) -> dict[str, Any]:
    case = hit.case
    return FoundCase(
        id=str(case.id), title=case.title, query=case.query, category=case.category, tags=list(case.tags),
        status=case.status, version=case.version, plan=case.plan, success_rate=case.success_rate,
        runs=case.run_count, score=hit.score, role=hit.role,
        why_warning=why_warning(status=case.status, success_rate=case.success_rate, runs=case.run_count),
    ).model_dump()


def cases_search(*, query: str, k: int, api_key: ApiKey) -> CaseSearchResult:
    """Top-k approved cases for a task (hybrid retrieval), split into examples and warnings, the
    way the planner shows them to its LLM. Cached like the REST search (`read_cache`); the plan
    and version are the caller's (an experiment's arm), applied after the cache, as there."""
    found = read_cache.cached_read(
        "mcp-search", {"query": query, "k": k}, lambda: [_found(hit) for hit in case_search(query=query, k=k)]
    )
    served = served_plans([Case(pk=item["id"], version=item["version"], plan=item["plan"]) for item in found],
                          assignment_key(api_key))
    cases = [
        FoundCase(**{**item, "version": served[item["id"]].version, "plan": served[item["id"]].plan})
        for item in found
    ]
    return CaseSearchResult(
        query=query,
        examples=[case for case in cases if case.role == "example"],
        warnings=[case for case in cases if case.role == "warning"],
    )


def assignment_key(api_key: ApiKey) -> str:
    """Which experiment arm this client runs: the REST API's default key
    (`casebank.search.apis.assignment_key_of`), so a client keeps one arm on both surfaces."""
    return f"api-key:{api_key.pk}"


def plan_for(*, case: Case, api_key: ApiKey) -> ServedPlan:
    """The version and plan this key runs: a candidate version for the keys an experiment on the
    case assigns to it (`reflection.experiments`), else the current one."""
    return served_plans([case], assignment_key(api_key))[str(case.pk)]


def _steps(plan: Any) -> list[dict[str, Any]]:
    if isinstance(plan, list):
        return [step if isinstance(step, dict) else {"action": str(step)} for step in plan]
    return [{"action": str(plan)}]


def case_plan(*, case_id: UUID, api_key: ApiKey) -> CasePlan:
    """The plan of an approved case to run now; counts as a use of the case."""
    case = _case(case_id)
    if case.review_state != ReviewState.APPROVED:
        raise InvalidInput(f"Case {case_id} is {case.get_review_state_display().lower()}: only approved cases are run.")
    served = plan_for(case=case, api_key=api_key)
    ids = [str(case.pk)]
    # Counting the use must not slow the call: the task queue, or one UPDATE when the broker is down.
    task_queue.enqueue_on_commit(
        "casebank.cases.tasks.record_case_use", ids, if_unavailable=lambda: services.case_record_use(case_ids=ids)
    )
    return CasePlan(
        case_id=str(case.pk), title=case.title, status=case.status, version=served.version,
        steps=_steps(served.plan), experiment_id=served.experiment_id, arm=served.arm,
        success_rate=case.success_rate, runs=case.run_count,
        warning=role_of(status=case.status, success_rate=case.success_rate) == "warning",
    )


def case_analysis(*, case_id: UUID, history: int) -> CaseAnalysisResult:
    """The latest stored analysis of a case and its trend; never a new computation."""
    case = _case(case_id)
    latest = analyses.case_analysis_latest(case_id=case.pk)
    trend = analyses.case_analysis_trend(case_id=case.pk, limit=history) if latest and history else []
    return CaseAnalysisResult(
        case_id=str(case.pk),
        analysed_at=latest.created_at if latest else None,
        analysis=dict(latest.result) if latest else None,
        history=[AnalysisPoint(**point) for point in trend],
    )
