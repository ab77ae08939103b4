"""The cost check before execution (agents/tools/sql_cost.py): the planner's estimate, on SQLite
and PostgreSQL, refuses cross products of the demo tables and lets the demo's questions through."""
from __future__ import annotations

import re

import pytest

from agents.tools import analytics, sql_cost

pytestmark = pytest.mark.django_db(transaction=True)

# What the demo's questions look like (README, seed cases): joins on keys, groupings, windows.
DEMO_QUERIES = [
    "SELECT region, SUM(total) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC",
    "SELECT c.segment, COUNT(*) AS n, AVG(o.total) AS avg_total FROM orders o JOIN customers c "
    "ON o.customer_id = c.id GROUP BY c.segment",
    "SELECT p.category, SUM(i.quantity * i.unit_price) AS revenue FROM order_items i JOIN products p "
    "ON i.product_id = p.id JOIN orders o ON i.order_id = o.id GROUP BY p.category",
    "SELECT category, AVG(resolved_hours) AS hours, AVG(csat) AS csat FROM support_tickets GROUP BY category",
    "SELECT c.region, COUNT(t.id) AS tickets FROM customers c JOIN support_tickets t ON t.customer_id = c.id "
    "GROUP BY c.region",
    "SELECT id, total, RANK() OVER (PARTITION BY region ORDER BY total DESC) AS r FROM orders",
    "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE churned = 1)",
    "WITH monthly AS (SELECT substr(order_date, 1, 7) AS month, SUM(total) AS revenue FROM orders GROUP BY 1) "
    "SELECT month, revenue FROM monthly ORDER BY month",
]
# orders x orders is 16 million rows; order_items x orders 40 million.
CROSS_PRODUCTS = [
    "SELECT COUNT(*) FROM orders a, orders b",
    "SELECT COUNT(*) FROM order_items i CROSS JOIN orders o",
    "SELECT a.id FROM orders a JOIN orders b ON a.total > b.total",
    "WITH o AS (SELECT * FROM orders) SELECT COUNT(*) FROM o, o AS p",
]




@pytest.mark.parametrize("sql", DEMO_QUERIES)
def test_it_lets_the_demo_questions_through_under_the_default_bounds(dialect, sql):
    result = analytics.run_checked_query(sql)
    assert result.rows
    # Measured: at most 9,905 rows (order_items) and a cost of 472; far below the bounds.
    assert 0 < result.plan["rows"] <= 20_000
    if dialect == "postgres":
        assert 0 < result.plan["cost"] <= 1_000


@pytest.mark.parametrize("sql", CROSS_PRODUCTS)
def test_it_refuses_a_cross_product_of_demo_tables_naming_the_estimate(dialect, sql):
    with pytest.raises(sql_cost.QueryTooCostly, match=r"ANALYTICS_MAX_PLAN_ROWS \(4,000,000\)") as refused:
        analytics.run_checked_query(sql)
    estimate = re.search(r"([\d,]+) rows", str(refused.value))
    assert estimate and int(estimate.group(1).replace(",", "")) >= 5_000_000


def test_it_refuses_before_running_so_the_timeout_never_comes_into_play(dialect, settings):
    settings.ANALYTICS_STATEMENT_TIMEOUT_MS = 100
    with pytest.raises(sql_cost.QueryTooCostly, match="16,000,000 rows"):
        analytics.run_checked_query("SELECT COUNT(*) FROM orders a, orders b")
    settings.ANALYTICS_MAX_PLAN_ROWS = 10**12
    settings.ANALYTICS_MAX_PLAN_COST = 1e12
    # The same query with the bound raised reaches the database and is stopped there.
    with pytest.raises(analytics.AnalyticsError, match="statement timeout of 100 ms"):
        analytics.run_checked_query("SELECT COUNT(*) FROM orders a, orders b, orders c")


def test_it_refuses_a_plan_over_the_cost_bound_on_postgres(dialect, settings):
    if dialect != "postgres":
        pytest.skip("SQLite's plan has no cost; its bound is the row estimate")
    settings.ANALYTICS_MAX_PLAN_COST = 50.0
    with pytest.raises(sql_cost.QueryTooCostly, match=r"a cost of 96 .* ANALYTICS_MAX_PLAN_COST \(50\)"):
        analytics.run_checked_query("SELECT region, SUM(total) AS revenue FROM orders GROUP BY region")


def test_the_api_answers_400_naming_the_estimate(dialect, caller):
    response = caller.post("/api/agents/data-analysis/", {"sql": "SELECT COUNT(*) FROM orders a, orders b"},
                           format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("SQL refused:") and "16,000,000 rows" in body["detail"]
    assert "ANALYTICS_MAX_PLAN_ROWS" in body["errors"]["sql"][0]
