"""The SQL guard refuses known bypasses with a clear message before any connection is opened, and
legitimate analytics queries still run on SQLite and PostgreSQL."""
from __future__ import annotations

import sqlite3

import pytest

from agents.tools import analytics
from agents.tools.sql_guard import MAX_NESTING, SqlRefused, check_sql

ALLOWED = ["customers", "orders", "order_items", "products", "support_tickets"]
# Nothing answers at these URLs: a refused query that had tried to connect would end in
# AnalyticsError, not SqlRefused (test_it_would_notice_a_connection_attempt proves it).
NOWHERE = {
    "sqlite": "sqlite:////nonexistent/caseloop/analytics.sqlite3",
    "postgres": "postgres://nobody@127.0.0.1:1/nowhere",
}

BYPASSES = [
    # statements that write
    ("WITH doomed AS (SELECT id FROM orders) DELETE FROM orders WHERE id IN (SELECT id FROM doomed)", "Only SELECT"),
    ("SELECT * FROM orders; DELETE FROM orders", "Exactly one statement"),
    ("SELECT 1 FROM orders; SELECT 2 FROM orders", "Exactly one statement"),
    ("SELECT * FROM orders -- harmless\n; DROP TABLE orders", "Exactly one statement"),
    ("SELECT * FROM orders /* hide */; /* */ UPDATE orders SET total = 0", "Exactly one statement"),
    ("SELECT * INTO stolen FROM customers", "INTO"),
    ("DELETE FROM orders", "Only SELECT"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "Only SELECT|could not be parsed"),
    ("PRAGMA writable_schema = 1", "Only SELECT|could not be parsed"),
    ("SELECT * FROM orders FOR UPDATE", "not allowed"),
    ("", "empty"),
    # tables
    ("SELECT * FROM users", "Table users is not allowed"),
    ("SELECT * FROM sqlite_master", "sqlite_master is not allowed"),
    ("SELECT * FROM pg_catalog.pg_authid", "Schema-qualified"),
    ("SELECT * FROM orders JOIN secrets ON secrets.id = orders.id", "Table secrets"),
    ("SELECT * FROM generate_series(1, 1000000000)", "Table functions"),
    ("SELECT * FROM orders, LATERAL (SELECT 1) AS x", "LATERAL is not allowed"),
    # a CTE only hides a table where it is in scope
    ("SELECT (WITH sqlite_master AS (SELECT 1) SELECT 1) AS x, name, sql FROM sqlite_master, orders",
     "Table sqlite_master is not allowed"),
    ("SELECT * FROM secrets JOIN orders ON orders.id = secrets.id "
     "WHERE 1 IN (WITH secrets AS (SELECT 1) SELECT 1 FROM secrets)", "Table secrets is not allowed"),
    ("SELECT id FROM orders WHERE id IN (WITH pg_user AS (SELECT 1 AS id) SELECT id FROM pg_user) "
     "AND EXISTS (SELECT 1 FROM pg_user)", "Table pg_user is not allowed"),
    ("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets, orders", "Table secrets is not allowed"),
    ("WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1) SELECT * FROM a, orders", "Table secrets is not allowed"),
    ("WITH orders AS (SELECT * FROM customers) SELECT * FROM orders", "CTE name orders shadows an allowed table"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r, orders", "WITH RECURSIVE"),
    # functions: an allow-list, and the refusal names the function
    ("SELECT printf('%.*c', 200000000, 'x') FROM orders", "function printf is not on the list"),
    ("SELECT repeat('x', 200000000) FROM orders", "function REPEAT is not on the list"),
    ("SELECT lpad('x', 200000000) FROM orders", "function LPAD is not on the list"),
    ("SELECT replace(name, 'a', name) FROM customers", "function REPLACE is not on the list"),
    ("SELECT version() FROM orders", "function VERSION is not on the list"),
    ("SELECT current_user FROM orders", "function CURRENT_USER is not on the list"),
    ("SELECT current_database() FROM orders", "function CURRENT_DATABASE is not on the list"),
    ("SELECT sqlite_version() FROM orders", "function SQLITE_VERSION is not on the list"),
    ("SELECT pg_sleep(30) FROM orders", "function pg_sleep is not on the list"),
    ("SELECT pg_read_file('/etc/passwd') FROM orders", "pg_read_file"),
    ("SELECT lo_export(1, '/tmp/x') FROM orders", "lo_export"),
    ("SELECT lo_import('/etc/passwd') FROM orders", "lo_import"),
    ("SELECT load_extension('/tmp/evil.so') FROM orders", "load_extension"),
    ("SELECT writefile('/tmp/x', 'y') FROM orders", "writefile"),
    ("SELECT set_config('transaction_read_only', 'off', true) FROM orders", "set_config"),
    ("SELECT group_concat(name) FROM customers", "GROUP_CONCAT|STRING_AGG"),
    ("SELECT user FROM orders", "user names the database session"),
    ("SELECT CAST('pg_authid' AS regclass) FROM orders", "not allowed"),
    ("SELECT " + " || ".join(["name"] * 10) + " FROM customers", "At most 8 string concatenations"),
    # unreadable SQL is a refusal, not a crash
    ("SELECT 'abc FROM orders", "could not be parsed"),
    ("SELECT 1 /* never closed FROM orders", "could not be parsed"),
    ("SELECT x'zz' FROM orders", "could not be parsed"),
    ("SELECT `name FROM customers", "could not be parsed|not a plain identifier"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM orders", f"more than {MAX_NESTING} levels"),
    ("SELECT " + "NOT " * 1500 + "1 FROM orders", "nested too deeply"),
    ("SELECT " + "CASE WHEN 1 THEN " * 400 + "1" + " END" * 400 + " FROM orders", "nested too deeply"),
    ("x" * 10_001, "longer than 10000"),
    # bind placeholders would reach the driver without values
    ("SELECT * FROM orders WHERE id = ?", "Bind parameters"),
    ("SELECT * FROM orders WHERE id = $1", "Bind parameters"),
    ("SELECT * FROM orders WHERE id = :id", "Bind parameters"),
    ("SELECT * FROM orders WHERE id = @id", "Bind parameters"),
    ("SELECT * FROM orders WHERE id = %s", "Bind parameters|could not be parsed"),
]
BYPASSES_SQLITE = [
    ("SELECT strftime(name, '2026-01-01') FROM customers", "format of STRFTIME must be a string literal"),
    ("SELECT strftime(name, '2026-01-01', 'localtime') FROM customers", "format of STRFTIME must be a string literal"),
]
BYPASSES_POSTGRES = [
    ('WITH "PG_USER" AS (SELECT 1) SELECT * FROM pg_user, orders', "Table pg_user is not allowed"),
    ("SELECT to_char(CAST(order_date AS DATE), region) FROM orders", "format of TO_CHAR must be a string literal"),
    ("SELECT * FROM orders WHERE id = %(id)s", "Bind parameters"),
    ("SELECT E'\\x41' FROM orders", "not allowed"),
]
CASES = (
    [(sql, message, dialect) for sql, message in BYPASSES for dialect in ("sqlite", "postgres")]
    + [(sql, message, "sqlite") for sql, message in BYPASSES_SQLITE]
    + [(sql, message, "postgres") for sql, message in BYPASSES_POSTGRES]
)


@pytest.mark.parametrize("sql,message,dialect", CASES, ids=[f"{d}-{i}" for i, (_, _, d) in enumerate(CASES)])
def test_it_refuses_known_bypasses_before_connecting(sql, message, dialect):
    with pytest.raises(SqlRefused, match=f"(?i){message}"):  # function names print in the dialect's case
        analytics.run_checked_query(sql, url=NOWHERE[dialect])


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_it_would_notice_a_connection_attempt(dialect):
    with pytest.raises(analytics.AnalyticsError):
        analytics.run_checked_query("SELECT id FROM orders", url=NOWHERE[dialect])


def test_it_refuses_the_cte_shadowing_that_used_to_leak_sqlite_master(analytics_db):
    leak = "SELECT (WITH sqlite_master AS (SELECT 1) SELECT 1) AS x, name, sql FROM sqlite_master, orders"
    # Unguarded, the query really reads the catalog: the refusal below is what stops it.
    columns, bounded, _plan = analytics._run_sqlite(analytics.conf.analytics_database_url(), leak, timeout_ms=5000, row_cap=5)
    assert columns == ["x", "name", "sql"] and bounded.rows[0][2].startswith("CREATE TABLE")
    with pytest.raises(SqlRefused, match="Table sqlite_master is not allowed"):
        analytics.run_checked_query(leak)


def test_it_resolves_ctes_by_scope():
    checked = check_sql(
        "WITH r AS (SELECT region, total FROM orders), s AS (SELECT region FROM r) "
        "SELECT * FROM s WHERE region IN (SELECT region FROM r) AND EXISTS (SELECT 1 FROM customers)",
        allowed_tables=ALLOWED, dialect="postgres",
    )
    assert checked.tables == ("customers", "orders")
    with pytest.raises(SqlRefused, match="Table r is not allowed"):  # r is out of scope in the outer query
        check_sql("SELECT * FROM (WITH r AS (SELECT 1 AS a FROM orders) SELECT a FROM r) AS x, r",
                  allowed_tables=ALLOWED, dialect="sqlite")


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


# Legitimate analytics over the demo data: joins, GROUP BY, CTEs that shadow nothing, windows, dates.
LEGIT = [
    ("SELECT c.region, COUNT(*) AS orders, SUM(o.total) AS revenue FROM orders o "
     "JOIN customers c ON c.id = o.customer_id GROUP BY c.region HAVING COUNT(*) > 10 ORDER BY c.region",
     lambda rows: len(rows) == 4 and sum(row[1] for row in rows) == 4000),
    ("WITH r AS (SELECT region, SUM(total) AS revenue FROM orders GROUP BY region), "
     "top_regions AS (SELECT region, revenue FROM r WHERE revenue > 0) "
     "SELECT region, revenue FROM top_regions ORDER BY revenue DESC",
     lambda rows: len(rows) == 4 and rows[0][1] >= rows[-1][1] > 0),
    ("SELECT id, region, ROW_NUMBER() OVER (PARTITION BY region ORDER BY total DESC, id) AS rn, "
     "RANK() OVER w AS rk, LAG(total) OVER w AS previous, "
     "SUM(total) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS running "
     "FROM orders WINDOW w AS (PARTITION BY region ORDER BY total) ORDER BY id LIMIT 20",
     lambda rows: len(rows) == 20 and all(row[2] >= 1 and row[3] >= 1 for row in rows)),
    ("SELECT c.segment, CASE WHEN c.churned = 1 THEN 'churned' ELSE 'active' END AS state, COUNT(*) AS n, "
     "COALESCE(MAX(c.name || ' (' || c.region || ')'), '') AS sample, NULLIF(COUNT(*), 0) AS nonzero "
     "FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.total BETWEEN 1 AND 100000) "
     "AND c.name LIKE 'Customer%' AND c.id NOT IN (SELECT customer_id FROM support_tickets WHERE csat < 2) "
     "GROUP BY 1, 2 ORDER BY 1, 2",
     lambda rows: 3 <= len(rows) <= 6 and all(" (" in row[3] for row in rows)),
    ("SELECT region FROM orders UNION SELECT region FROM customers ORDER BY region",
     lambda rows: [row[0] for row in rows] == ["east", "north", "south", "west"]),
    ("SELECT big.region, ROUND(CAST(AVG(big.total) AS NUMERIC), 2) AS avg_total, ABS(MIN(big.discount) - 1) AS d, "
     "COUNT(DISTINCT big.customer_id) AS buyers FROM (SELECT region, total, discount, customer_id FROM orders "
     "WHERE total > 100) AS big GROUP BY big.region ORDER BY big.region",
     lambda rows: len(rows) == 4 and all(float(row[1]) > 100 for row in rows)),
    ("SELECT UPPER(SUBSTR(p.category, 1, 3)) AS code, LOWER(p.category) AS category, LENGTH(p.category) AS len, "
     "SUM(oi.quantity * oi.unit_price) AS gross, COUNT(DISTINCT oi.order_id) AS orders FROM order_items oi "
     "LEFT JOIN products p ON p.id = oi.product_id WHERE p.category IN ('hardware', 'software', 'services') "
     "GROUP BY 1, 2, 3 ORDER BY gross DESC",
     lambda rows: sorted(row[0] for row in rows) == ["HAR", "SER", "SOF"]),
]
# Every documented function once (docs/agents.md), so the allow-list and the docs cannot drift apart.
SCALARS = ("SELECT ABS(total), CEIL(total), FLOOR(total), ROUND(total), SQRT(total), SIGN(total), LN(total + 1), "
           "EXP(0), LOWER(region), UPPER(region), LENGTH(region), SUBSTR(region, 1, 2), SUBSTRING(region, 2), "
           "TRIM(region), COALESCE(region, ''), NULLIF(region, ''), CAST(total AS INTEGER), region || '!', "
           "CASE WHEN total > 100 THEN 'big' ELSE 'small' END, CURRENT_DATE, CURRENT_TIMESTAMP "
           "FROM orders ORDER BY id LIMIT 5")
WINDOWS = ("SELECT ROW_NUMBER() OVER w, RANK() OVER w, DENSE_RANK() OVER w, PERCENT_RANK() OVER w, CUME_DIST() OVER w, "
           "NTILE(2) OVER w, LAG(total) OVER w, LEAD(total, 1, 0) OVER w, FIRST_VALUE(total) OVER w, "
           "LAST_VALUE(total) OVER w, NTH_VALUE(total, 2) OVER w, AVG(total) OVER (PARTITION BY region) "
           "FROM orders WINDOW w AS (PARTITION BY region ORDER BY total, id) ORDER BY id LIMIT 5")
LEGIT += [(SCALARS, lambda rows: len(rows) == 5), (WINDOWS, lambda rows: len(rows) == 5)]
LEGIT_SQLITE = [
    ("SELECT COUNT(*), SUM(total), AVG(total), MIN(total), MAX(total), TOTAL(total), MAX(total, 1), MIN(total, 1), "
     "IFNULL(total, 0), IIF(total > 1, 1, 0), INSTR(region, 'o'), DATE(order_date), TIME(order_date), "
     "DATETIME(order_date), JULIANDAY(order_date), UNIXEPOCH(order_date), STRFTIME('%Y', order_date), "
     "STRFTIME('%Y', order_date, 'localtime'), LOG(total), POWER(total, 2) FROM orders GROUP BY id LIMIT 5",
     lambda rows: len(rows) == 5),
    ("SELECT strftime('%Y-%m', order_date) AS month, COUNT(*) AS orders, TOTAL(total) AS revenue FROM orders "
     "WHERE date(order_date) >= date('2026-01-01', '+1 month') GROUP BY month ORDER BY month",
     lambda rows: rows[0][0] == "2026-02" and len(rows) == 10),
    ("SELECT category, AVG(julianday(opened_at) - julianday(c.signup_date)) AS days_since_signup, "
     "IFNULL(MAX(csat), 0) AS best, IIF(AVG(csat) > 3, 'good', 'poor') AS verdict FROM support_tickets t "
     "JOIN customers c ON c.id = t.customer_id GROUP BY category ORDER BY category",
     lambda rows: len(rows) == 5 and all(row[1] > 0 and row[2] == 5 for row in rows)),
]
LEGIT_POSTGRES = [
    ("SELECT COUNT(*), SUM(total), AVG(total), MIN(total), MAX(total), STDDEV(total), STDDEV_POP(total), "
     "STDDEV_SAMP(total), VARIANCE(total), VAR_POP(total), PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY total), "
     "PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY total), BOOL_AND(total > 0), BOOL_OR(total > 0), "
     "GREATEST(MAX(total), 1), LEAST(MIN(total), 1), MAX(total) ^ 2, LOG(MAX(total)) FROM orders",
     lambda rows: len(rows) == 1 and rows[0][0] == 4000),
    ("SELECT CONCAT(region, '-', id), CONCAT_WS(',', region, id), LEFT(region, 2), RIGHT(region, 2), "
     "STRPOS(region, 'o'), POSITION('o' IN region), DATE_TRUNC('week', order_date::timestamp), "
     "EXTRACT(MONTH FROM order_date::date), DATE_PART('day', order_date::date), TO_CHAR(order_date::date, 'Mon YYYY'), "
     "NOW(), AGE(order_date::date), LOCALTIME, LOCALTIMESTAMP, order_date::date + INTERVAL '1 month' "
     "FROM orders ORDER BY id LIMIT 5",
     lambda rows: len(rows) == 5 and rows[0][0].endswith("-1")),
    ("SELECT DATE_TRUNC('month', order_date::date) AS month, EXTRACT(YEAR FROM order_date::date) AS year, "
     "TO_CHAR(order_date::date, 'YYYY-MM') AS label, COUNT(*) FILTER (WHERE total > 100) AS big_orders "
     "FROM orders GROUP BY 1, 2, 3 ORDER BY 1",
     lambda rows: rows[0][2] == "2026-01" and len(rows) == 11 and float(rows[0][1]) == 2026),
    ("SELECT region, PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY total) AS median, STDDEV(total) AS spread, "
     "MAX(order_date::date) - MIN(order_date::date) AS span_days, "
     "AGE(MAX(order_date::date), MIN(order_date::date)) AS span, NOW() > CURRENT_DATE - INTERVAL '1 day' AS fresh "
     "FROM orders WHERE id % 2 = 0 AND region ILIKE 'n%' GROUP BY region",
     lambda rows: len(rows) == 1 and rows[0][0] == "north" and rows[0][3] > 300 and rows[0][5] is True),
]


@pytest.mark.parametrize("sql,expect", LEGIT + LEGIT_SQLITE)
def test_it_runs_legitimate_analytics_on_sqlite(analytics_db, sql, expect):
    result = analytics.run_checked_query(sql)
    assert expect(result.rows), result.rows[:5]
    assert check_sql(result.sql, allowed_tables=ALLOWED, dialect="sqlite").sql == result.sql  # stable


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sql,expect", LEGIT + LEGIT_POSTGRES)
def test_it_runs_legitimate_analytics_on_postgres(pg_demo_analytics, sql, expect):
    result = analytics.run_checked_query(sql)
    assert expect(result.rows), result.rows[:5]
    assert check_sql(result.sql, allowed_tables=ALLOWED, dialect="postgres").sql == result.sql


@pytest.mark.django_db(transaction=True)
def test_it_refuses_the_self_referencing_cte_that_reads_the_real_table_on_postgres(pg_demo_analytics):
    import psycopg

    with psycopg.connect(pg_demo_analytics, autocommit=True) as connection:
        connection.execute("CREATE TABLE secrets (id int, secret text)")
        connection.execute("INSERT INTO secrets VALUES (1, 'hunter2')")
    try:
        sql = "WITH secrets AS (SELECT * FROM secrets) SELECT secret FROM secrets"
        # Unguarded, PostgreSQL reads the real table from inside the non-recursive CTE.
        _, bounded, _plan = analytics._run_postgres(pg_demo_analytics, sql, timeout_ms=5000, row_cap=5)
        assert bounded.rows == [["hunter2"]]
        with pytest.raises(SqlRefused, match="Table secrets is not allowed"):
            analytics.run_checked_query(sql)
    finally:
        with psycopg.connect(pg_demo_analytics, autocommit=True) as connection:
            connection.execute("DROP TABLE secrets")


def test_it_runs_read_only_even_if_a_write_slipped_past_the_guard(analytics_db):
    # Second layer: the connection itself refuses writes.
    with pytest.raises(analytics.AnalyticsError, match="readonly|read-only|query_only|attempt to write"):
        analytics._run_sqlite(analytics.conf.analytics_database_url(), "DELETE FROM orders", timeout_ms=1000, row_cap=10)
    assert sqlite3.connect(analytics_db).execute("SELECT COUNT(*) FROM orders").fetchone()[0] > 0


def test_it_caps_the_size_of_a_value_even_if_an_amplifier_slipped_past_the_guard(analytics_db):
    # One VM step builds the whole string, so the timeout alone could not stop it.
    with pytest.raises(analytics.AnalyticsError, match="too big"):
        analytics._run_sqlite(analytics.conf.analytics_database_url(),
                              "SELECT replace(hex(zeroblob(400000)), '0', 'aaaa')", timeout_ms=5000, row_cap=10)


@pytest.mark.parametrize("sql", ["SELECT * FROM orders WHERE id = ?", "SELECT 1; SELECT 2", "SELECT * FROM nowhere"])
def test_it_maps_every_database_error_to_an_analytics_error(analytics_db, sql):
    with pytest.raises(analytics.AnalyticsError, match="The database refused the query"):
        analytics._run_sqlite(analytics.conf.analytics_database_url(), sql, timeout_ms=1000, row_cap=10)


def test_it_aborts_a_query_past_the_statement_timeout(analytics_db, settings):
    settings.ANALYTICS_STATEMENT_TIMEOUT_MS = 50
    settings.ANALYTICS_MAX_PLAN_ROWS = 10**15  # the cost check would refuse it first (test_sql_cost.py)
    slow = "SELECT COUNT(*) FROM order_items a JOIN order_items b ON a.quantity <= b.quantity JOIN orders c ON c.total >= 0"
    with pytest.raises(analytics.AnalyticsError, match="statement timeout of 50 ms"):
        analytics.run_checked_query(slow)


def test_it_caps_the_rows(analytics_db, settings):
    settings.ANALYTICS_ROW_CAP = 7
    result = analytics.run_checked_query("SELECT id FROM orders")
    assert len(result.rows) == 7 and result.truncated
