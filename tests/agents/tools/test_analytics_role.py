"""The analytics role (`manage.py setup_analytics_role`): with the guard bypassed, a write or a
read of a table off the allow-list fails at PostgreSQL itself; on SQLite the file is read-only."""
from __future__ import annotations

from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from agents.tools import analytics
from agents.tools.analytics_role import analytics_role_drop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def role(pg_demo_analytics, settings):
    """A role of this test database's own (roles are per server, shared by every database)."""
    name = f"caseloop_analytics_{connection.settings_dict['NAME']}"[:60]
    with psycopg.connect(pg_demo_analytics, autocommit=True) as admin:
        admin.execute("DROP TABLE IF EXISTS secrets")
        admin.execute("CREATE TABLE secrets (id int, secret text)")
        admin.execute("INSERT INTO secrets VALUES (1, 'hunter2')")
    out = StringIO()
    call_command("setup_analytics_role", "--role", name, stdout=out)
    assert "SELECT granted on customers, products, orders, order_items, support_tickets" in out.getvalue()
    settings.ANALYTICS_ROLE = name
    yield name
    analytics_role_drop(url=pg_demo_analytics, role=name)
    with psycopg.connect(pg_demo_analytics, autocommit=True) as admin:
        admin.execute("DROP TABLE IF EXISTS secrets")


def _unguarded(url: str, sql: str) -> analytics.BoundedRows:
    return analytics._run_postgres(url, sql, timeout_ms=2000, row_cap=10).bounded


@pytest.mark.postgres(reason="roles and grants")
def test_it_answers_allow_listed_tables_as_the_role(role, pg_demo_analytics):
    result = analytics.run_checked_query("SELECT COUNT(*) AS n FROM orders")
    assert result.rows == [[4000]]
    assert _unguarded(pg_demo_analytics, "SELECT current_user").rows == [[role]]


@pytest.mark.postgres(reason="roles and grants")
def test_a_table_off_the_allow_list_is_refused_by_the_database_with_the_guard_bypassed(role, pg_demo_analytics,
                                                                                       settings):
    with pytest.raises(analytics.AnalyticsError, match="permission denied for table secrets"):
        _unguarded(pg_demo_analytics, "SELECT secret FROM secrets")
    with pytest.raises(analytics.AnalyticsError, match="permission denied for table casebank_apikey"):
        _unguarded(pg_demo_analytics, "SELECT * FROM casebank_apikey")
    # Without the role the same bypass reads it: the role is what refused.
    settings.ANALYTICS_ROLE = ""
    assert _unguarded(pg_demo_analytics, "SELECT secret FROM secrets").rows == [["hunter2"]]


@pytest.mark.postgres(reason="roles and grants")
def test_a_write_is_refused_by_the_role_itself_not_only_the_read_only_transaction(role, pg_demo_analytics):
    with pytest.raises(analytics.AnalyticsError, match="read-only transaction"):
        _unguarded(pg_demo_analytics, "SELECT * FROM orders FOR UPDATE")
    # Outside any read-only transaction, as the role: still no write.
    with psycopg.connect(pg_demo_analytics, autocommit=True) as admin:
        admin.execute(f'SET ROLE "{role}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table orders"):
            admin.execute("DELETE FROM orders")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table orders"):
            admin.execute("SELECT * FROM orders FOR UPDATE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            admin.execute("CREATE TABLE planted (id int)")


@pytest.mark.postgres(reason="roles and grants")
def test_a_login_as_the_role_is_read_only_and_bounded_by_its_own_settings(role, pg_demo_analytics):
    call_command("setup_analytics_role", "--role", role, "--login", stdout=StringIO())
    dsn = psycopg.conninfo.conninfo_to_dict(pg_demo_analytics)
    as_role = psycopg.conninfo.make_conninfo(**{**dsn, "user": role, "password": ""})
    with psycopg.connect(as_role, autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert conn.execute("SHOW max_parallel_workers_per_gather").fetchone() == ("0",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM orders")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM secrets")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE postgres")


@pytest.mark.postgres(reason="roles and grants")
def test_it_is_idempotent_and_revokes_a_table_taken_off_the_allow_list(role, pg_demo_analytics, settings):
    settings.ANALYTICS_ALLOWED_TABLES = ["customers", "products", "orders", "order_items", "support_tickets", "secrets"]
    call_command("setup_analytics_role", "--role", role, stdout=StringIO())
    assert _unguarded(pg_demo_analytics, "SELECT secret FROM secrets").rows == [["hunter2"]]
    settings.ANALYTICS_ALLOWED_TABLES = ["customers", "products", "orders", "order_items", "support_tickets"]
    call_command("setup_analytics_role", "--role", role, stdout=StringIO())
    call_command("setup_analytics_role", "--role", role, stdout=StringIO())
    with pytest.raises(analytics.AnalyticsError, match="permission denied for table secrets"):
        _unguarded(pg_demo_analytics, "SELECT secret FROM secrets")


def test_the_command_refuses_a_sqlite_analytics_database(analytics_db):
    with pytest.raises(CommandError, match="not PostgreSQL"):
        call_command("setup_analytics_role", stdout=StringIO())


def test_sqlite_refuses_a_write_at_the_database_with_the_guard_bypassed(analytics_db):
    url = f"sqlite:///{analytics_db}"
    for sql in ("DELETE FROM orders", "CREATE TABLE planted (id int)", "INSERT INTO orders SELECT * FROM orders"):
        with pytest.raises(analytics.AnalyticsError, match="readonly database"):
            analytics._run_sqlite(url, sql, timeout_ms=1000, row_cap=10)
    # Even with query_only switched off, the file itself was opened read-only (mode=ro).
    opened = analytics._sqlite_connect(url)
    try:
        opened.execute("PRAGMA query_only = OFF")
        with pytest.raises(Exception, match="readonly database"):
            opened.execute("DELETE FROM orders")
    finally:
        opened.close()
    assert analytics.run_checked_query("SELECT COUNT(*) FROM orders").rows == [[4000]]


@pytest.mark.postgres(reason="PostgreSQL settings")
def test_the_analytics_transaction_bounds_memory_and_parallelism(pg_demo_analytics, settings):
    settings.ANALYTICS_WORK_MEM = "8MB"
    rows = analytics._run_postgres(
        pg_demo_analytics, "SELECT current_setting('work_mem'), current_setting('max_parallel_workers_per_gather'), "
        "current_setting('temp_file_limit'), current_setting('transaction_read_only')", timeout_ms=2000, row_cap=1,
    ).bounded.rows
    assert rows == [["8MB", "0", "256MB", "on"]]
