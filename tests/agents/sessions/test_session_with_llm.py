"""Full sessions with the scripted OpenAI-compatible server: LLM plan, Text2SQL, LLM judge,
iteration after a refused query, and the new-case path."""
from __future__ import annotations

import pytest

from agents.models import Session, SessionEvent
from agents.sessions.tasks import record_session_outcome
from agents.tools.sql_guard import PROMPT_RULES
from casebank.models import Case, CaseStatus, ReviewState
from reflection.models import ExecutionLog, LLMCall
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What was the total order revenue per region this year?"
ANSWER = "Revenue per region is in the SQL result, highest first [1]."
GOOD_SQL = "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC"
PLAN = {"steps": [
    {"agent": "DataAnalysisAgent", "action": "Sum order totals by region"},
    {"agent": "information_retrieval", "action": "Find context on regions"},
    {"agent": "supervisor", "action": "Summarise"},
]}


def test_it_runs_an_llm_plan_with_text2sql_and_a_judge_then_files_a_new_case(
    api, session_llm, analytics_db, knowledge, make_case
):
    # A similar but not close case with a poor record: it must reach the LLM as a warning.
    poor = make_case(title="Revenue forecast", query="Forecast next month's sales from twelve months of orders",
                     plan=[{"agent": "data_analysis", "action": "Extrapolate"}])
    Case.objects.filter(pk=poor.pk).update(success_rate=0.2, run_count=150)
    session_llm.reply(
        Reply.json(PLAN, prompt_tokens=300, completion_tokens=40),
        Reply.json({"sql": GOOD_SQL, "explanation": "sum by region"}, prompt_tokens=200, completion_tokens=30),
        Reply.json({"scores": {"data_analysis": 0.95, "information_retrieval": 0.7}, "rationale": "ok"}),
        Reply.text(ANSWER, prompt_tokens=400, completion_tokens=20),
    )
    response = api.post("/api/sessions/", {"query": QUESTION}, format="json")
    assert response.status_code == 202
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()

    assert state["status"] == "completed", state["errors"]
    assert state["plan_source"] == "llm" and state["plan"] == PLAN["steps"]
    data = state["results"]["data_analysis"]
    assert data["columns"] == ["region", "revenue"]
    assert {row[0] for row in data["rows"]} == {"north", "south", "east", "west"}
    assert data["rows"] == sorted(data["rows"], key=lambda r: -r[1])
    assert data["chart"] == {"type": "bar", "x": "region", "y": ["revenue"]}
    assert data["summary"].startswith("4 rows") and data["cache_key"].startswith("agents:sql:")
    assert state["scores"] == {"data_analysis": 0.95, "information_retrieval": 0.7}
    assert state["tokens_in"] == 300 + 200 + 100 + 400 and state["tokens_out"] == 40 + 30 + 50 + 20
    # The final answer was written by the LLM from the sources, streamed, and passed the grounding check.
    assert state["answer"] == ANSWER
    assert state["results"]["answer"]["method"] == "llm" and state["results"]["answer"]["sources"][0]["n"] == 1
    answer_prompt = session_llm.requests[3]
    assert answer_prompt["stream"] is True and "[1] SQL result" in answer_prompt["messages"][-1]["content"]
    assert state["cost_usd"] > 0 and state["model"] == "test-model"

    # The planner was shown the poor case as an example to avoid.
    plan_prompt = session_llm.requests[0]["messages"][-1]["content"]
    failed_part = plan_prompt.split("often failed")[1]
    assert "Forecast next month" in failed_part
    assert "total order revenue per region" in session_llm.requests[1]["messages"][-1]["content"]
    assert "orders(" in session_llm.requests[1]["messages"][-1]["content"]

    # No close case was used: a new one is filed, pending review, and the log points at it.
    session = Session.objects.select_related("created_case").get(pk=state["id"])
    new_case = session.created_case
    assert new_case is not None and session.case is None
    assert (new_case.review_state, new_case.status) == (ReviewState.PENDING, CaseStatus.ACTIVE)
    assert new_case.tags == ["from-session"] and new_case.category == "sessions"
    # The case keeps the SQL that worked, so it replays without an LLM.
    assert new_case.query == QUESTION and new_case.plan == [{**PLAN["steps"][0], "sql": GOOD_SQL}, *PLAN["steps"][1:]]
    log = ExecutionLog.objects.get(pk=session.log_id)
    assert log.session_id == session.id and log.case_id == new_case.id and log.success
    assert log.tokens_in == 1000 and log.context["new_case"] is True

    # A re-delivered outcome task neither duplicates the log nor files a second case.
    record_session_outcome(str(session.id))
    assert ExecutionLog.objects.filter(session_id=session.id).count() == 1
    assert Case.objects.filter(category="sessions").count() == 1


def test_it_iterates_after_a_refused_query_and_feeds_back_the_error(api, session_llm, analytics_db, knowledge):
    session_llm.reply(
        Reply.json({"steps": [{"agent": "data_analysis", "action": "count orders"}]}),
        Reply.json({"sql": "WITH x AS (SELECT 1) DELETE FROM orders"}),
        # iteration 2: the judge is not called for a failed agent, so the next call is Text2SQL
        Reply.json({"sql": "SELECT COUNT(*) AS orders FROM orders"}),
        Reply.json({"scores": {"data_analysis": 0.9}}),
        Reply.text("We have 4000 orders [1]."),
    )
    response = api.post("/api/sessions/", {"query": "How many orders do we have in total?"}, format="json")
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()
    assert state["iteration"] == 2 and state["status"] == "completed"
    assert state["results"]["data_analysis"]["rows"] == [[4000]]
    # The first round's failure, fixed by the second, is still named.
    assert list(state["errors"]) == ["data_analysis#1"]
    assert state["errors"]["data_analysis#1"]["type"] == "SQLRefused"
    assert state["answer"] == "We have 4000 orders [1]."
    retry_prompt = session_llm.requests[2]["messages"][-1]["content"]
    assert "A previous attempt failed: SQL refused: Only SELECT is allowed" in retry_prompt
    # Every Text2SQL prompt carries the guard's rules for the analytics database's dialect.
    first_prompt = session_llm.requests[1]["messages"][-1]["content"]
    assert PROMPT_RULES["sqlite"] in first_prompt and PROMPT_RULES["sqlite"] in retry_prompt
    evaluations = SessionEvent.objects.filter(session_id=state["id"], kind="evaluation").order_by("sequence")
    assert [e.data["passed"] for e in evaluations] == [False, True]
    assert sqlite_count(analytics_db) == 4000


def sqlite_count(path) -> int:
    import sqlite3

    return sqlite3.connect(path).execute("SELECT COUNT(*) FROM orders").fetchone()[0]


ESCALATION = "How do I escalate a P1 incident to the on-call engineer?"


def test_it_falls_back_to_the_heuristic_plan_and_judge_when_the_llm_fails(api, session_llm, analytics_db, knowledge):
    session_llm.default = Reply.error(500)
    response = api.post("/api/sessions/", {"query": ESCALATION}, format="json")
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()
    assert state["plan_source"] == "heuristic"
    plan_event = SessionEvent.objects.get(session_id=state["id"], kind="plan")
    assert any("LLM plan failed" in note for note in plan_event.data["notes"])
    assert state["results"]["information_retrieval"]["sources"][0]["title"] == "Incident escalation procedure"
    evaluation = SessionEvent.objects.filter(session_id=state["id"], kind="evaluation").first()
    assert evaluation.data["method"] == "heuristic"
    # No LLM answer at all: heuristic plan and heuristic scores, nothing billed.
    assert state["plan"] == [
        {"agent": "information_retrieval", "action": f"Find documents and cases about: {ESCALATION}"},
        {"agent": "supervisor", "action": "Summarise the findings for the user"},
    ]
    retrieval = state["results"]["information_retrieval"]
    assert state["scores"] == {"information_retrieval": round(retrieval["confidence"], 4)}
    assert (state["tokens_in"], state["tokens_out"], state["cost_usd"], state["model"]) == (0, 0, 0.0, "")
    # The escalation procedure answers it (the retrieval's confidence is its best match), so the
    # heuristic judge passes it in one round; the answer (its LLM call failed too) is extractive.
    assert (state["status"], state["passed"], state["iteration"]) == ("completed", True, 1)
    assert state["results"]["answer"]["method"] == "extractive" and "PagerDuty" in state["answer"]
    assert retrieval["confidence"] >= 0.6 and state["created_case_id"] is not None
    assert all(e.data["method"] == "heuristic" and any("LLM judge failed" in n for n in e.data["notes"])
               for e in SessionEvent.objects.filter(session_id=state["id"], kind="evaluation"))
    calls = sorted(LLMCall.objects.values_list("purpose", "outcome"))
    assert calls == [("supervisor.answer", "error"), ("supervisor.judge", "error"), ("supervisor.plan", "error")]
    assert len(session_llm.requests) == 3
