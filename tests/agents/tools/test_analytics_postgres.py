"""Text2SQL's execution layer on a PostgreSQL analytics database: read-only, time-boxed, capped."""
from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from agents.tools import analytics
from tests.bench.support import database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pg_analytics(settings):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL analytics path; the SQLite path is covered by test_sql_guard.py")
    url = database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, region text, total float8)")
        conn.execute("INSERT INTO orders SELECT g, (ARRAY['north','south'])[1 + g % 2], g FROM generate_series(1, 3000) g")
    settings.ANALYTICS_DATABASE_URL = url
    settings.ANALYTICS_ALLOWED_TABLES = ["orders"]
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE orders")


def test_it_runs_a_checked_select(pg_analytics):
    result = analytics.run_checked_query("SELECT region, COUNT(*) AS n FROM orders GROUP BY region ORDER BY region")
    assert result.columns == ["region", "n"] and result.rows == [["north", 1500], ["south", 1500]]


def test_it_refuses_writes_in_the_read_only_transaction(pg_analytics):
    # A cursor takes only queries, so a plain DELETE fails even earlier; row locks are the write
    # a query can still ask for, and the read-only transaction refuses them.
    with pytest.raises(analytics.AnalyticsError, match="read-only transaction"):
        analytics._run_postgres(pg_analytics, "SELECT * FROM orders FOR UPDATE", timeout_ms=1000, row_cap=10)
    with pytest.raises(analytics.AnalyticsError):
        analytics._run_postgres(pg_analytics, "DELETE FROM orders", timeout_ms=1000, row_cap=10)
    assert analytics.run_checked_query("SELECT COUNT(*) FROM orders").rows == [[3000]]


def test_it_applies_the_statement_timeout_and_row_cap(pg_analytics, settings):
    settings.ANALYTICS_STATEMENT_TIMEOUT_MS = 100
    _no_cost_bound(settings)
    with pytest.raises(analytics.AnalyticsError, match="statement timeout of 100 ms"):
        analytics.run_checked_query("SELECT COUNT(*) FROM orders a, orders b, orders c")
    settings.ANALYTICS_ROW_CAP = 10
    capped = analytics.run_checked_query("SELECT id FROM orders")
    assert len(capped.rows) == 10 and capped.truncated


def test_it_fetches_only_the_capped_rows_from_a_huge_result(pg_analytics, settings):
    # 27 billion rows: a client-side cursor would stream until the timeout; the server-side one
    # hands over the first 11 and stops.
    settings.ANALYTICS_STATEMENT_TIMEOUT_MS = 3000
    settings.ANALYTICS_ROW_CAP = 10
    _no_cost_bound(settings)
    result = analytics.run_checked_query("SELECT a.id, b.id AS b_id, c.id AS c_id FROM orders a, orders b, orders c")
    assert len(result.rows) == 10 and result.truncated


def _no_cost_bound(settings) -> None:
    """These tests are about the layers behind the cost check (test_sql_cost.py), which would
    refuse their cross products first."""
    settings.ANALYTICS_MAX_PLAN_ROWS = 10**15
    settings.ANALYTICS_MAX_PLAN_COST = 1e15
