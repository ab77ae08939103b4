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


@pytest.mark.parametrize("sql,reason", [
    ("DELETE FROM orders", "Only SELECT"),
    ("SELECT * FROM orders; DROP TABLE orders", "Exactly one statement"),
    ("SELECT pg_sleep(5) FROM orders", "pg_sleep"),
    ("SELECT (WITH sqlite_master AS (SELECT 1) SELECT 1) AS x, name, sql FROM sqlite_master, orders", "sqlite_master"),
    ("SELECT * FROM secrets JOIN orders ON orders.id = secrets.id "
     "WHERE 1 IN (WITH secrets AS (SELECT 1) SELECT 1 FROM secrets)", "secrets"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r, orders", "RECURSIVE"),
    ("SELECT printf('%.*c', 200000000, 'x') FROM orders", "printf"),
    ("SELECT sqlite_version() FROM orders", "SQLITE_VERSION"),
    ("SELECT 'unterminated FROM orders", "could not be parsed"),
    ("SELECT 1 /* unterminated FROM orders", "could not be parsed"),
    ("SELECT x'zz' FROM orders", "could not be parsed"),
    ("SELECT `name FROM customers", "could not be parsed"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM orders", "parentheses"),
    ("SELECT " + "NOT " * 1500 + "1 FROM orders", "nested too deeply"),
    ("SELECT * FROM orders WHERE id = ?", "Bind parameters"),
    ("SELECT * FROM orders WHERE id = :id", "Bind parameters"),
    ("SELECT * FROM orders WHERE id = $1", "Bind parameters"),
])
def test_it_refuses_unsafe_or_unreadable_caller_sql_with_400(api, tmp_path, settings, sql, reason):
    # Nothing exists at this URL: a request that reached the database would answer 422, not 400.
    settings.ANALYTICS_DATABASE_URL = f"sqlite:///{tmp_path / 'missing.sqlite3'}"
    response = api.post("/api/agents/data-analysis/", {"sql": sql}, format="json")
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["detail"].startswith("SQL refused:") and reason in body["detail"]
    assert body["errors"]["sql"] and reason in body["errors"]["sql"][0]


def test_it_would_answer_422_had_a_request_reached_the_missing_database(api, tmp_path, settings):
    settings.ANALYTICS_DATABASE_URL = f"sqlite:///{tmp_path / 'missing.sqlite3'}"
    response = api.post("/api/agents/data-analysis/", {"sql": "SELECT id FROM orders"}, format="json")
    assert response.status_code == 422 and "does not exist" in response.json()["detail"]


@pytest.mark.parametrize("sql", [
    "SELECT o.region, strftime('%Y-%m', o.order_date) AS month, COUNT(*) AS n FROM orders o "
    "JOIN customers c ON c.id = o.customer_id GROUP BY 1, 2 ORDER BY 1, 2",
    "WITH r AS (SELECT region, SUM(total) AS revenue FROM orders GROUP BY region) "
    "SELECT region, revenue, RANK() OVER (ORDER BY revenue DESC) AS place FROM r",
])
def test_it_runs_legitimate_analytics(api, analytics_db, sql):
    response = api.post("/api/agents/data-analysis/", {"sql": sql}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["rows"]


def test_it_refuses_an_unknown_column_before_running_it(api, analytics_db):
    # Columns are resolved against the real tables (agents/tools/sql_columns.py), so a wrong name
    # is a refusal naming it rather than a database error.
    response = api.post("/api/agents/data-analysis/", {"sql": "SELECT no_such_column FROM orders"}, format="json")
    assert response.status_code == 400 and "no_such_column" in response.json()["detail"]
    assert response.json()["errors"]["sql"]


def test_it_reports_a_database_error_as_422(api, analytics_db):
    # A real database error: integer overflow is only known when the row is computed.
    response = api.post("/api/agents/data-analysis/", {"sql": "SELECT abs(-9223372036854775807 - 1) FROM orders"},
                        format="json")
    assert response.status_code == 422, response.content[:300]
    assert response.json()["errors"]["sql"]


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
