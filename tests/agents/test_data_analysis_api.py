"""`POST /api/agents/data-analysis/`: caller SQL through the guard; Text2SQL needs an LLM (503)."""
from __future__ import annotations

import pytest

from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db


def test_it_answers_503_with_a_clear_message_when_no_llm_is_configured(api, analytics_db, no_llm):
    response = api.post("/api/agents/data-analysis/", {"question": "How many orders?"}, format="json")
    assert response.status_code == 503
    assert "needs an LLM" in response.json()["detail"] and "OPENAI_API_KEY" in response.json()["detail"]


def test_it_runs_caller_sql_read_only_with_summary_chart_and_cache_key(api, analytics_db, no_llm):
    sql = "SELECT segment, COUNT(*) AS customers FROM customers GROUP BY segment ORDER BY segment"
    first = api.post("/api/agents/data-analysis/", {"sql": sql}, format="json").json()
    assert first["columns"] == ["segment", "customers"]
    assert [row[0] for row in first["rows"]] == ["enterprise", "mid-market", "smb"]
    assert sum(row[1] for row in first["rows"]) == 400
    assert first["chart"]["type"] == "bar" and first["summary"].startswith("3 rows")
    assert first["cached"] is False
    second = api.post("/api/agents/data-analysis/", {"sql": sql}, format="json").json()
    assert second["cached"] is True and second["cache_key"] == first["cache_key"]


@pytest.mark.parametrize("sql", ["DELETE FROM orders", "SELECT * FROM orders; DROP TABLE orders", "SELECT pg_sleep(5) FROM orders"])
def test_it_refuses_unsafe_caller_sql_with_400(api, analytics_db, sql):
    response = api.post("/api/agents/data-analysis/", {"sql": sql}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("SQL refused:")


def test_it_reports_a_database_error_as_422(api, analytics_db):
    response = api.post("/api/agents/data-analysis/", {"sql": "SELECT no_such_column FROM orders"}, format="json")
    assert response.status_code == 422 and "no_such_column" in response.json()["detail"]


def test_it_validates_input(api, anonymous_api, analytics_db):
    assert api.post("/api/agents/data-analysis/", {}, format="json").status_code == 400
    both = api.post("/api/agents/data-analysis/", {"sql": "SELECT 1 FROM orders", "question": "x"}, format="json")
    assert both.status_code == 400 and both.json()["errors"]
    assert anonymous_api.post("/api/agents/data-analysis/", {"sql": "SELECT 1 FROM orders"}, format="json").status_code == 401


def test_it_translates_a_question_through_the_llm(api, analytics_db, session_llm):
    session_llm.reply(Reply.json({"sql": "SELECT COUNT(*) AS tickets FROM support_tickets WHERE category = 'login'"}))
    response = api.post("/api/agents/data-analysis/", {"question": "How many login tickets?"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["columns"] == ["tickets"] and 0 < response.json()["rows"][0][0] < 1200
    assert "support_tickets(" in session_llm.requests[0]["messages"][-1]["content"]
