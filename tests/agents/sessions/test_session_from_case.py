"""A session whose query matches an active case reuses its plan, with no LLM at all."""
from __future__ import annotations

import pytest

from agents.models import Session, SessionEvent
from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_reuses_the_close_case_plan_and_logs_the_run_against_it(api, make_case, knowledge, no_llm):
    case = make_case(
        title="Refund policy answer",
        query="What is our refund policy for annual subscriptions?",
        plan=[{"agent": "information_retrieval", "action": "Find the refund policy"},
              {"agent": "supervisor", "action": "Answer"}],
        category="support/policies",
    )
    response = api.post("/api/sessions/", {"query": "What is our refund policy for annual subscriptions?"}, format="json")
    assert response.status_code == 202, response.content
    session_id = response.json()["session_id"]

    state = api.get(f"/api/sessions/{session_id}").json()
    assert state["status"] == "completed", state
    assert state["plan_source"] == "case"
    assert state["case_id"] == str(case.id) and state["case_version"] == case.version
    assert state["plan"] == case.plan
    ir = state["results"]["information_retrieval"]
    documents = [s["title"] for s in ir["sources"] if s["type"] == "document"]
    assert documents[0] == "Refund policy"
    assert "60 days" in ir["context"]
    assert 0 < ir["confidence"] <= 1
    assert state["scores"]["information_retrieval"] >= 0.6 and state["passed"] is True
    assert "data_analysis" not in state["results"]
    assert state["timings_ms"]["total"] >= state["timings_ms"]["execute_1"] > 0

    log = ExecutionLog.objects.get(session_id=session_id)
    assert log.case_id == case.id and log.success is True and log.case_version == case.version
    assert state["log_id"] == str(log.id)
    # No new case: a close case was used.
    session = Session.objects.get(pk=session_id)
    assert session.created_case is None
    case.refresh_from_db()
    assert case.usage_count == 1
    phases = list(SessionEvent.objects.filter(session=session).values_list("phase", flat=True))
    for phase in ("queued", "analyse", "retrieve", "plan", "select", "execute", "evaluate", "done"):
        assert phase in phases
    sequences = list(SessionEvent.objects.filter(session=session).values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))


def test_it_plans_heuristically_without_llm_and_substitutes_the_data_agent(api, knowledge, no_llm):
    response = api.post("/api/sessions/", {"query": "How many support tickets per category did we get last week?"}, format="json")
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()
    assert state["plan_source"] == "heuristic"
    assert any(step["agent"] == "data_analysis" for step in state["plan"])
    # Text2SQL needs an LLM: the step went to the retrieval worker instead.
    select = SessionEvent.objects.get(session_id=state["id"], kind="select")
    decisions = {d["agent"]: d for d in select.data["decisions"]}
    assert decisions["data_analysis"]["decision"] == "substituted"
    assert decisions["data_analysis"]["chosen"] == "information_retrieval"
    assert "data_analysis" not in state["results"] and "information_retrieval" in state["results"]
    # Documents cannot count tickets and no sentence matches the question: "No answer found."
    # after one round (a retry would be told nothing that could change it), not three.
    assert (state["status"], state["passed"], state["iteration"]) == ("failed", False, 1)
    assert state["answer"] == "No answer found."
    # The swap is named in `errors`, not only in the `select` event.
    assert state["finished_at"] and state["errors"]["select:data_analysis"]["type"] == "AgentSubstituted"
    assert "Text2SQL needs an LLM" in state["errors"]["select:data_analysis"]["message"]
    assert state["errors"]["iterations"]["type"] == "NothingMatched"
    assert 0 < state["scores"]["information_retrieval"] < 0.6
    evaluations = SessionEvent.objects.filter(session_id=state["id"], kind="evaluation")
    assert [e.data["passed"] for e in evaluations.order_by("sequence")] == [False]
    assert state["created_case_id"] is None
    log = ExecutionLog.objects.get(session_id=state["id"])
    assert (log.success, log.case_id, log.error_type) == (False, None, "QualityBelowThreshold")


def test_it_never_reuses_a_case_pending_review_even_when_it_matches_exactly(api, make_case, knowledge, no_llm):
    from casebank.models import ReviewState

    query = "What is our refund policy for annual subscriptions?"
    pending = make_case(title="Refund policy answer", query=query, review_state=ReviewState.PENDING,
                        plan=[{"agent": "information_retrieval", "action": "Find the refund policy"}])
    response = api.post("/api/sessions/", {"query": query}, format="json")
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()
    assert state["plan_source"] == "heuristic" and state["case_id"] is None
    similar = SessionEvent.objects.get(session_id=state["id"], kind="phase", phase="plan").data["similar_cases"]
    assert str(pending.id) not in {case["case_id"] for case in similar}


def test_it_files_a_case_that_keeps_the_callers_sql_and_replays_it_without_an_llm(api, knowledge, analytics_db, no_llm):
    from casebank.cases.services import case_review_approve

    query = "Which region had the highest order revenue?"
    sql = "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC"
    first = api.get(f"/api/sessions/{api.post('/api/sessions/', {'query': query, 'sql': sql}, format='json').json()['session_id']}").json()
    assert first["status"] == "completed", first["errors"]
    case = Session.objects.select_related("created_case").get(pk=first["id"]).created_case
    assert case is not None and case.plan[0] == {**case.plan[0], "agent": "data_analysis", "sql": sql}

    case_review_approve(case=case, actor="reviewer", note="replayable")
    # Same question, no SQL given, no LLM: the case's step carries the SQL, so Text2SQL is not needed.
    second = api.get(f"/api/sessions/{api.post('/api/sessions/', {'query': query}, format='json').json()['session_id']}").json()
    assert second["plan_source"] == "case" and second["case_id"] == str(case.id)
    assert second["status"] == "completed", second["errors"]
    assert second["results"]["data_analysis"]["rows"] == first["results"]["data_analysis"]["rows"]
    assert not any(key.startswith("select:") for key in second["errors"])
