"""The respond step as a user sees it: an answer quoting the sources with numbered citations
(extractive without an LLM, written and streamed by the LLM with one), "No answer found." when
nothing matches, and sessions that stop when another round would change nothing."""
from __future__ import annotations

import pytest

from agents.models import SessionEvent
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def run(api, query: str, **extra) -> dict:
    response = api.post("/api/sessions/", {"query": query, **extra}, format="json")
    assert response.status_code == 202, response.content
    return api.get(f"/api/sessions/{response.json()['session_id']}").json()


def test_it_answers_with_the_policy_text_and_cites_it_without_an_llm(api, knowledge, no_llm):
    state = run(api, "What is our refund policy for enterprise customers?")
    answer = state["answer"]
    # Measured before: five titles, the policy text buried. Now the policy's own sentences, cited.
    assert "Relevant sources" not in answer
    assert "refund" in answer.split("\n\nSources:")[0].lower()
    assert "[1]" in answer and "\n\nSources:\n[1] Refund policy" in answer
    assert state["results"]["answer"]["method"] == "extractive"
    assert state["results"]["answer"]["sources"][0] == {**state["results"]["answer"]["sources"][0], "n": 1,
                                                        "title": "Refund policy", "type": "document"}
    assert "{'agent'" not in answer  # no case plan printed as a Python dict
    # The policy says nothing of enterprise customers: its match (about 0.5) stays below the bar,
    # a second round searches wider, the third would change nothing, so the session stops there.
    assert (state["status"], state["passed"], state["iteration"]) == ("failed", False, 3)
    assert state["errors"]["iterations"]["type"] == "NoProgress"


def test_a_question_one_passage_answers_passes_at_once_without_an_llm(api, knowledge, no_llm):
    state = run(api, "How do I escalate a P1 incident to the on-call engineer?")
    # The escalation procedure matches it well (0.83); the two passages after it do not (about
    # 0.3). Before, the retrieval's confidence was the mean of the top three, so this session
    # failed after three rounds with the right answer; now it is the best passage's match.
    assert (state["status"], state["passed"], state["iteration"]) == ("completed", True, 1)
    assert state["results"]["information_retrieval"]["confidence"] >= 0.6
    assert "PagerDuty" in state["answer"] and "[1] Incident escalation procedure" in state["answer"]
    assert state["created_case_id"] is not None  # a success with no close case: a case pending review


@pytest.mark.parametrize("query", ["purple elephant banana quantum sandwich",
                                   "which region had the highest revenue last quarter?"])
def test_it_says_no_answer_found_after_one_iteration_when_nothing_matches(api, knowledge, no_llm, query):
    state = run(api, query)
    assert state["answer"] == "No answer found."
    assert (state["status"], state["passed"], state["iteration"]) == ("failed", False, 1)
    assert SessionEvent.objects.filter(session_id=state["id"], kind="evaluation").count() == 1
    assert state["errors"]["iterations"]["type"] == "NothingMatched"


def test_it_says_no_answer_found_with_no_documents_at_all(api, db, no_llm):
    state = run(api, "What is our refund policy?")
    assert state["answer"] == "No answer found." and state["passed"] is False and state["iteration"] == 1


def test_it_answers_from_caller_sql_with_the_data_summary_cited(api, knowledge, analytics_db, no_llm):
    sql = "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC"
    state = run(api, "Which region had the highest order revenue?", sql=sql)
    assert state["status"] == "completed", state["errors"]
    top = state["results"]["data_analysis"]["rows"][0]
    assert state["answer"].startswith("4 rows with columns region, revenue; first: region = ")
    rows = state["results"]["data_analysis"]["rows"]
    assert f"region = {top[0]}, revenue = {top[1]}. Highest revenue: {top[0]} ({top[1]}); " in state["answer"]
    assert f"lowest: {rows[-1][0]} ({rows[-1][1]}). [1]" in state["answer"]
    assert "[1] SQL result" in state["answer"]


QUESTION = "Which region had the highest order revenue?"
SQL = "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC"
PLAN = {"steps": [{"agent": "data_analysis", "action": "Sum revenue by region"}, {"agent": "supervisor", "action": "Answer"}]}


def revenue_rows(analytics_db) -> list:
    import sqlite3

    return sqlite3.connect(analytics_db).execute(SQL).fetchall()


def test_it_streams_an_llm_answer_grounded_in_the_rows_with_citations(api, session_llm, analytics_db, knowledge):
    region, revenue = revenue_rows(analytics_db)[0]
    text = f"{region.title()} had the highest order revenue, {revenue} [1]."
    session_llm.reply(Reply.json(PLAN), Reply.json({"sql": SQL}), Reply.json({"scores": {"data_analysis": 0.9}}),
                      Reply.text(text, chunk_size=3, chunk_delay=0.03))
    state = run(api, QUESTION)
    assert state["status"] == "completed", state["errors"]
    assert state["answer"] == text and state["results"]["answer"]["method"] == "llm"
    deltas = SessionEvent.objects.filter(session_id=state["id"], kind="answer_delta").order_by("sequence")
    assert deltas.count() >= 2  # streamed in pieces, not written once at the end
    assert "".join(d.data["text"] for d in deltas) == text
    assert {d.phase for d in deltas} == {"respond"}
    # The answer model saw the rows as source [1] and nothing but the sources.
    prompt = session_llm.requests[3]["messages"][-1]["content"]
    assert "[1] SQL result (data)" in prompt and str(revenue) in prompt
    assert "ONLY the numbered sources" in session_llm.requests[3]["messages"][0]["content"]


@pytest.mark.parametrize("bad", ["North had the highest revenue, 999999.99 [1].", "North had the highest revenue [7].",
                                 "North had the highest revenue."])
def test_it_falls_back_to_the_extractive_answer_when_the_llm_answer_is_not_grounded(
    api, session_llm, analytics_db, knowledge, bad
):
    session_llm.reply(Reply.json(PLAN), Reply.json({"sql": SQL}), Reply.json({"scores": {"data_analysis": 0.9}}),
                      Reply.text(bad))
    state = run(api, QUESTION)
    assert state["answer"] != bad and state["answer"].startswith("4 rows with columns region, revenue")
    assert state["results"]["answer"]["method"] == "extractive"
    assert state["errors"]["answer"]["type"] == "AnswerFallback"
    assert "not grounded" in state["errors"]["answer"]["message"]
    # The evaluation of the agents stands: the extractive answer is a real answer.
    assert state["status"] == "completed"


def test_it_accepts_the_llm_saying_no_answer_found(api, session_llm, analytics_db, knowledge):
    session_llm.reply(Reply.json(PLAN), Reply.json({"sql": SQL}), Reply.json({"scores": {"data_analysis": 0.9}}),
                      Reply.text("No answer found."))
    state = run(api, QUESTION)
    assert state["answer"] == "No answer found." and state["passed"] is False and state["status"] == "failed"
