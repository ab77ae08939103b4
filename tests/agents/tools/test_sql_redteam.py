"""The held-out red team's Text2SQL findings (issue #16), on SQLite and PostgreSQL, through the API
(`POST /api/agents/data-analysis/`) as a caller would send them.

Each answered before with hundreds of megabytes, ran a function the allow-list excludes, read a
system column, or crashed the JSON rendering (a 500).
"""
from __future__ import annotations

import orjson
import pytest
from rest_framework.test import APIClient

from agents.tools import analytics
from core.cache import layered_get

pytestmark = pytest.mark.django_db(transaction=True)

MAX_RESULT_BYTES = 1_000_000
# Rows and cells plus the rest of the answer (sql, summary, chart, notes).
MAX_RESPONSE_BYTES = MAX_RESULT_BYTES + 50_000


def _strftime_amplifier(specifiers: int, doublings: int) -> str:
    """strftime('%J…') makes ~18 characters of each `%J`; `x||x` through CTEs doubles that."""
    ctes = [f"a0 AS (SELECT strftime('{'%J' * specifiers}', order_date) AS x FROM orders)"]
    ctes += [f"a{i} AS (SELECT x || x AS x FROM a{i - 1})" for i in range(1, doublings + 1)]
    return f"WITH {', '.join(ctes)} SELECT x FROM a{doublings}"


# ~2 KB: 900 specifiers and 6 doublings make 518 KB a cell (under SQLite's 1 MB value limit),
# 259 MB for 500 rows before the fix (measured with sqlite3 directly).
SQLITE_AMPLIFIER = _strftime_amplifier(900, 6)
POSTGRES_PADDING = "SELECT CAST('a' AS CHAR(1000000)) AS x FROM orders"




def _ask(caller: APIClient, sql: str):
    return caller.post("/api/agents/data-analysis/", {"sql": sql}, format="json")


def _assert_bounded(response) -> dict:
    assert len(response.content) <= MAX_RESPONSE_BYTES, len(response.content)
    body = response.json()
    if response.status_code == 200:
        assert len(orjson.dumps(body["rows"])) <= MAX_RESULT_BYTES
    else:
        assert response.status_code == 400 and body["detail"].startswith("SQL refused")
    return body


def test_it_bounds_the_sqlite_strftime_amplifier(caller, analytics_db):
    assert 1_500 < len(SQLITE_AMPLIFIER) < 2_500
    body = _assert_bounded(_ask(caller, SQLITE_AMPLIFIER))
    assert "format of strftime is longer than 64" in body["detail"].lower()


def test_it_refuses_the_postgres_padding_cast(caller, pg_demo_analytics):
    body = _assert_bounded(_ask(caller, POSTGRES_PADDING))
    assert "CHAR(n) pads every value" in body["detail"]


def test_it_cuts_cells_and_stops_fetching_at_the_byte_budget(caller, dialect):
    # Within the guard's limits (a 64-character format, 8 concatenations) a cell still grows to
    # ~150 KB: it is cut, and the rows stop before the result passes 1 MB.
    sql = _strftime_amplifier(32, 8) if dialect == "sqlite" else (
        "WITH a0 AS (SELECT to_char(CAST(order_date AS DATE), "
        "'FMDay FMMonth YYYY-MM-DD HH24:MI:SS FMDay FMMonth YYYY') AS x FROM orders), "
        + ", ".join(f"a{i} AS (SELECT x || x AS x FROM a{i - 1})" for i in range(1, 9))
        + " SELECT x FROM a8"
    )
    response = _ask(caller, sql)
    assert response.status_code == 200, response.content[:300]
    body = _assert_bounded(response)
    assert body["truncated"] is True
    assert all(len(row[0].encode()) <= 4096 for row in body["rows"])
    assert 0 < body["row_count"] < 500
    assert any("ANALYTICS_MAX_RESULT_BYTES" in note for note in body["notes"])
    assert any("were cut" in note for note in body["notes"])


def test_it_stores_only_the_bounded_result_in_the_cache(caller, dialect):
    response = _ask(caller, _strftime_amplifier(32, 8) if dialect == "sqlite" else "SELECT * FROM order_items")
    assert response.status_code == 200
    cached = layered_get(response.json()["cache_key"])
    assert cached is not None and len(orjson.dumps(cached)) <= MAX_RESPONSE_BYTES


@pytest.mark.parametrize("sql", [
    "SELECT printf('%0999999d', 1) FROM orders",
    "SELECT zeroblob(1000000) FROM orders",
    "SELECT randomblob(1000000) FROM orders",
    "SELECT replace(region, 'o', region) FROM orders",
    "SELECT repeat(region, 100000) FROM orders",
    "SELECT lpad(region, 1000000) FROM orders",
    "SELECT rpad(region, 1000000, 'x') FROM orders",
    "SELECT format('%1000000s', region) FROM orders",
    "SELECT CAST(region AS VARCHAR(1000000)) FROM orders",
    "SELECT CAST(region AS CHAR(5000)) FROM orders",
])
def test_it_refuses_padding_and_repetition_amplifiers_with_a_reason(caller, dialect, sql):
    response = _ask(caller, sql)
    assert response.status_code == 400, response.content[:300]
    detail = response.json()["detail"]
    assert "larger than its input" in detail or "pads every value" in detail or "not on the list" in detail


ATTRIBUTE_NOTATION = [
    "SELECT o.row_to_json FROM orders AS o",
    "SELECT c.json_agg FROM customers AS c",
    "SELECT c.jsonb_agg FROM customers AS c",
    "SELECT o.array_agg FROM orders AS o",
    "SELECT o.record_send FROM orders AS o",
    "SELECT o.pg_typeof FROM orders AS o",
    "SELECT o.hash_record FROM orders AS o",
    "SELECT o.any_value FROM orders AS o",
    "SELECT o.pg_column_size FROM orders AS o",
    "SELECT a.json_agg FROM order_items AS a, products AS b",
    "WITH t AS (SELECT id FROM orders) SELECT t.json_agg FROM t",
    "SELECT s.row_to_json FROM (SELECT id FROM orders) AS s",
    "SELECT orders.row_to_json FROM orders",
    "SELECT o FROM orders AS o",
]


@pytest.mark.parametrize("sql", ATTRIBUTE_NOTATION)
def test_it_refuses_attribute_notation_function_calls(caller, dialect, sql):
    response = _ask(caller, sql)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["detail"].startswith("SQL refused")


@pytest.mark.parametrize("column", ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "o.ctid", "o.xmin"])
def test_it_refuses_system_columns(caller, dialect, column):
    response = _ask(caller, f"SELECT {column} FROM orders AS o")
    assert response.status_code == 400, response.content[:300]
    assert "system column" in response.json()["detail"]


@pytest.mark.parametrize("sql", [
    "SELECT o.id, o.total, c.region FROM orders AS o JOIN customers AS c ON c.id = o.customer_id ORDER BY o.id LIMIT 3",
    "WITH t AS (SELECT region, SUM(total) AS revenue FROM orders GROUP BY region) SELECT t.region, t.revenue FROM t "
    "ORDER BY revenue DESC",
    "SELECT s.n FROM (SELECT COUNT(*) AS n FROM orders) AS s",
    "SELECT region, COUNT(*) AS n FROM orders GROUP BY region HAVING COUNT(*) > 1 ORDER BY n",
])
def test_it_still_runs_queries_whose_columns_all_resolve(caller, dialect, sql):
    response = _ask(caller, sql)
    assert response.status_code == 200, response.content[:300]


NON_FINITE = {
    "sqlite": ["SELECT 1e999 AS x FROM orders LIMIT 1", "SELECT exp(1000000) AS x FROM orders LIMIT 1"],
    "postgres": ["SELECT CAST('Infinity' AS DOUBLE PRECISION) AS x FROM orders LIMIT 1",
                 "SELECT CAST('NaN' AS FLOAT) AS x FROM orders LIMIT 1"],
}


@pytest.mark.parametrize("index", [0, 1])
def test_it_returns_non_finite_numbers_as_null_with_a_note(caller, dialect, index):
    response = _ask(caller, NON_FINITE[dialect][index])
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["rows"] == [[None]]
    assert any("non-finite" in note for note in body["notes"])


def test_the_runner_bounds_bytes_even_if_an_amplifier_slipped_past_the_guard(dialect, settings):
    # Unguarded, straight to the runner: the byte budget holds while fetching.
    url = analytics.conf.analytics_database_url()
    sql = ("SELECT replace(hex(zeroblob(100000)), '0', 'ab') FROM orders" if dialect == "sqlite"
           else "SELECT CAST('a' AS CHAR(300000)) AS x FROM orders")
    runner = analytics._run_sqlite if dialect == "sqlite" else analytics._run_postgres
    columns, bounded, _plan = runner(url, sql, timeout_ms=5000, row_cap=500, max_bytes=200_000, max_cell=1000)
    assert bounded.truncated and len(orjson.dumps(bounded.rows)) <= 200_000
    assert all(len(row[0]) <= 1000 for row in bounded.rows)
