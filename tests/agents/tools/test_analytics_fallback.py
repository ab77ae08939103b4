"""ANALYTICS_FALLBACK_DATABASE_URL: when the primary analytics database cannot be connected to,
the replica answers, and the result and the session's events say so. The primary is really
stopped: a TCP proxy in front of PostgreSQL is shut (connections refused), a SQLite file moved."""
from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from agents.models import SessionEvent
from agents.tools import analytics
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pg_primary(pg_demo_analytics, settings):
    """The PostgreSQL analytics database behind a proxy (the primary) and directly (the replica)."""
    dsn = conninfo_to_dict(pg_demo_analytics)
    host, port = str(dsn.get("host") or "/tmp"), int(dsn.get("port") or 5432)
    target: str | tuple[str, int] = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
    with TcpProxy(target) as proxy:
        user, password = quote(str(dsn.get("user") or "postgres")), quote(str(dsn.get("password") or ""))
        settings.ANALYTICS_DATABASE_URL = f"postgresql://{user}:{password}@127.0.0.1:{proxy.port}/{dsn['dbname']}"
        settings.ANALYTICS_FALLBACK_DATABASE_URL = pg_demo_analytics
        settings.ANALYTICS_CONNECT_TIMEOUT_S = 2
        yield proxy


@pytest.fixture
def sqlite_primary(analytics_db, settings, tmp_path):
    replica = tmp_path / "replica.sqlite3"
    replica.write_bytes(analytics_db.read_bytes())
    settings.ANALYTICS_FALLBACK_DATABASE_URL = f"sqlite:///{replica}"
    return analytics_db


@pytest.mark.postgres(reason="a PostgreSQL primary behind a proxy")
def test_it_switches_to_the_fallback_when_the_postgres_primary_stops(pg_primary):
    before = analytics.run_checked_query("SELECT COUNT(*) AS n FROM orders")
    assert before.source == "primary" and before.rows == [[4000]]
    pg_primary.stop()
    after = analytics.run_checked_query("SELECT COUNT(*) AS n FROM orders")
    assert after.source == "fallback" and after.rows == [[4000]]
    assert after.notes[0].startswith("Answered by the fallback database (ANALYTICS_FALLBACK_DATABASE_URL)")
    assert "unreachable" in after.notes[0]


@pytest.mark.postgres(reason="a PostgreSQL primary behind a proxy")
def test_a_query_error_on_a_reachable_primary_does_not_switch(pg_primary, settings):
    settings.ANALYTICS_STATEMENT_TIMEOUT_MS = 50
    settings.ANALYTICS_MAX_PLAN_ROWS = 10**12
    settings.ANALYTICS_MAX_PLAN_COST = 1e12
    with pytest.raises(analytics.AnalyticsError, match="statement timeout") as error:
        analytics.run_checked_query("SELECT COUNT(*) FROM orders a, orders b, orders c")
    assert not isinstance(error.value, analytics.AnalyticsUnreachable)


@pytest.mark.postgres(reason="a PostgreSQL primary behind a proxy")
def test_without_a_fallback_an_unreachable_primary_answers_422(pg_primary, settings, api):
    settings.ANALYTICS_FALLBACK_DATABASE_URL = ""
    pg_primary.stop()
    response = api.post("/api/agents/data-analysis/", {"sql": "SELECT COUNT(*) FROM orders"}, format="json")
    assert response.status_code == 422
    assert "unreachable" in response.json()["detail"]


@pytest.mark.postgres(reason="a PostgreSQL primary behind a proxy")
def test_the_api_and_the_session_events_record_the_switch(pg_primary, api, knowledge, no_llm):
    pg_primary.stop()
    body = api.post("/api/agents/data-analysis/", {"sql": "SELECT COUNT(*) AS n FROM orders"}, format="json").json()
    assert body["source"] == "fallback" and body["rows"] == [[4000]]
    assert "ANALYTICS_FALLBACK_DATABASE_URL" in body["notes"][0]
    posted = api.post("/api/sessions/", {"query": "How many orders?", "sql": "SELECT COUNT(*) AS n FROM orders"},
                      format="json")
    session_id = posted.json()["session_id"]
    state = api.get(f"/api/sessions/{session_id}").json()
    assert state["results"]["data_analysis"]["source"] == "fallback"
    event = SessionEvent.objects.get(session_id=session_id, kind="agent", data__agent="data_analysis")
    assert event.data["source"] == "fallback" and "ANALYTICS_FALLBACK_DATABASE_URL" in event.data["notes"][0]


def test_it_switches_to_the_fallback_when_the_sqlite_primary_is_gone(sqlite_primary):
    assert analytics.run_checked_query("SELECT COUNT(*) FROM orders").source == "primary"
    os.rename(sqlite_primary, sqlite_primary.with_suffix(".moved"))
    after = analytics.run_checked_query("SELECT COUNT(*) FROM orders")
    assert after.source == "fallback" and after.rows == [[4000]] and "does not exist" in after.notes[0]


def test_a_fallback_answer_is_not_cached_under_the_primary(sqlite_primary, api):
    os.rename(sqlite_primary, sqlite_primary.with_suffix(".moved"))
    first = api.post("/api/agents/data-analysis/", {"sql": "SELECT COUNT(*) FROM orders"}, format="json").json()
    assert first["source"] == "fallback"
    os.rename(sqlite_primary.with_suffix(".moved"), sqlite_primary)
    second = api.post("/api/agents/data-analysis/", {"sql": "SELECT COUNT(*) FROM orders"}, format="json").json()
    assert second["source"] == "primary" and second["cached"] is False
