"""The SQL guard refuses known bypasses with a clear message, and nothing reaches the database."""
from __future__ import annotations

import sqlite3

import pytest

from agents import analytics
from agents.sql_guard import SqlRefused, check_sql

ALLOWED = ["customers", "orders", "order_items", "products", "support_tickets"]

BYPASSES = [
    ("WITH doomed AS (SELECT id FROM orders) DELETE FROM orders WHERE id IN (SELECT id FROM doomed)", "Only SELECT"),
    ("SELECT * FROM orders; DELETE FROM orders", "Exactly one statement"),
    ("SELECT 1 FROM orders; SELECT 2 FROM orders", "Exactly one statement"),
    ("SELECT * FROM orders -- harmless\n; DROP TABLE orders", "Exactly one statement"),
    ("SELECT * FROM orders /* hide */; /* */ UPDATE orders SET total = 0", "Exactly one statement"),
    ("SELECT pg_sleep(30) FROM orders", "pg_sleep"),
    ("SELECT pg_read_file('/etc/passwd') FROM orders", "pg_read_file"),
    ("SELECT lo_export(1, '/tmp/x') FROM orders", "lo_export"),
    ("SELECT load_extension('/tmp/evil.so') FROM orders", "load_extension"),
    ("SELECT writefile('/tmp/x', 'y') FROM orders", "writefile"),
    ("SELECT * INTO stolen FROM customers", "INTO"),
    ("SELECT * FROM users", "Table users is not allowed"),
    ("SELECT * FROM sqlite_master", "sqlite_master is not allowed"),
    ("SELECT * FROM pg_catalog.pg_authid", "Schema-qualified"),
    ("SELECT * FROM orders JOIN secrets ON secrets.id = orders.id", "Table secrets"),
    ("SELECT * FROM generate_series(1, 1000000000)", "Table functions"),
    ("DELETE FROM orders", "Only SELECT"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "Only SELECT|could not be parsed"),
    ("PRAGMA writable_schema = 1", "Only SELECT|could not be parsed"),
    ("SELECT * FROM orders FOR UPDATE", "not allowed"),
    ("", "empty"),
]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@pytest.mark.parametrize("sql,message", BYPASSES)
def test_it_refuses_known_bypasses_with_a_clear_message(sql, message, dialect):
    with pytest.raises(SqlRefused, match=message):
        check_sql(sql, allowed_tables=ALLOWED, dialect=dialect)


def test_it_allows_a_plain_select_with_ctes_and_aggregates():
    checked = check_sql(
        "WITH r AS (SELECT region, SUM(total) AS revenue FROM orders GROUP BY region) "
        "SELECT region, revenue FROM r ORDER BY revenue DESC -- best first",
        allowed_tables=ALLOWED, dialect="sqlite",
    )
    assert checked.tables == ("orders",)
    assert "--" not in checked.sql and "best first" not in checked.sql  # comments never reach the DB


@pytest.mark.parametrize("sql", [
    "SELECT * FROM orders; DELETE FROM orders",
    "WITH x AS (SELECT 1) DELETE FROM orders",
    "SELECT * FROM orders -- x\n; DROP TABLE orders",
])
def test_it_executes_nothing_when_refused(analytics_db, sql):
    before = sqlite3.connect(analytics_db).execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    with pytest.raises(SqlRefused):
        analytics.run_checked_query(sql)
    connection = sqlite3.connect(analytics_db)
    assert connection.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == before > 0
    assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'orders'").fetchone()


def test_it_runs_read_only_even_if_a_write_slipped_past_the_guard(analytics_db):
    # Second layer: the connection itself refuses writes.
    with pytest.raises(analytics.AnalyticsError, match="readonly|read-only|query_only|attempt to write"):
        analytics._run_sqlite(analytics.conf.analytics_database_url(), "DELETE FROM orders", timeout_ms=1000, row_cap=10)
    assert sqlite3.connect(analytics_db).execute("SELECT COUNT(*) FROM orders").fetchone()[0] > 0


def test_it_aborts_a_query_past_the_statement_timeout(analytics_db, settings):
    settings.ANALYTICS_STATEMENT_TIMEOUT_MS = 50
    slow = "SELECT COUNT(*) FROM order_items a JOIN order_items b ON a.quantity <= b.quantity JOIN orders c ON c.total >= 0"
    with pytest.raises(analytics.AnalyticsError, match="statement timeout of 50 ms"):
        analytics.run_checked_query(slow)


def test_it_caps_the_rows(analytics_db, settings):
    settings.ANALYTICS_ROW_CAP = 7
    result = analytics.run_checked_query("SELECT id FROM orders")
    assert len(result.rows) == 7 and result.truncated
