"""SQL results with Infinity or NaN: the session is stored and read back with nulls and a note,
on both databases, and a database error never shows our own SQL to the client."""
from __future__ import annotations

import json

import pytest
from django.db import connection

from agents.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def check(api, sql: str) -> dict:
    response = api.post("/api/sessions/", {"query": "How big is x?", "sql": sql}, format="json")
    assert response.status_code == 202
    read = api.get(f"/api/sessions/{response.json()['session_id']}")
    assert read.status_code == 200, read.content[:500]
    state = json.loads(read.content)  # strict JSON: no Infinity/NaN tokens
    assert "UPDATE" not in read.content.decode() and "agents_session" not in read.content.decode()
    return state


def test_it_stores_infinity_as_null_with_a_note_on_sqlite(api, knowledge, analytics_db, no_llm):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite analytics")
    state = check(api, "SELECT 1e999 AS x, -1e999 AS y, 2 AS z FROM orders LIMIT 1")
    data = state["results"]["data_analysis"]
    assert data["rows"] == [[None, None, 2]]
    # The data-analysis worker nulls them and says so (agents.tools.result_bounds).
    assert any("non-finite" in note for note in data["notes"])
    assert state["status"] in ("completed", "failed") and "supervisor" not in state["errors"]
    # The stored row itself is clean (admin and the execution log read it too).
    assert Session.objects.get(pk=state["id"]).results["data_analysis"]["rows"] == [[None, None, 2]]


def test_it_stores_nan_as_null_with_a_note_on_postgresql(api, knowledge, pg_demo_analytics, no_llm):
    state = check(api, "SELECT CAST('NaN' AS FLOAT) AS x, CAST('Infinity' AS FLOAT) AS y, 2 AS z FROM orders LIMIT 1")
    data = state["results"]["data_analysis"]
    assert data["rows"] == [[None, None, 2]] and any("non-finite" in note for note in data["notes"])
    assert "supervisor" not in state["errors"]


def test_it_does_not_show_the_internal_sql_of_a_failed_save(api, knowledge, no_llm, monkeypatch):
    from django.db import DatabaseError

    from agents.runtime import supervisor

    async def broken(run, offload):
        raise DatabaseError('invalid input syntax for type json\nLINE 1: UPDATE "agents_session" SET "results" = ...')

    monkeypatch.setattr(supervisor, "drive", broken)
    state = check(api, "SELECT 1 AS x FROM orders")
    assert state["status"] == "failed"
    assert state["errors"]["supervisor"]["message"].startswith("The session could not be saved")


def test_it_stores_non_finite_values_from_any_source_as_null(db):
    """The storage guard behind the worker's: whatever puts Infinity or NaN into a session (a
    future worker, a cached result from before) is stored as null with a note, on both databases."""
    from agents.sessions import services

    session = services.session_create(query="q", actor="test")
    services.session_results_record(
        session=session, ran={"custom": True}, errors={}, usages=[], timings_ms={"total": float("inf")},
        results={"custom": {"rows": [[float("nan"), 1.5, float("-inf")]], "notes": []}},
    )
    event = services.session_evaluation_record(
        session=session, scores={"custom": float("nan")}, passed=False, method="heuristic", notes=[],
        threshold=0.6, usage=None, timings_ms={},
    )
    session.refresh_from_db()
    assert session.results["custom"]["rows"] == [[None, 1.5, None]]
    assert session.results["custom"]["non_finite_nulled"] == 2
    assert "non-finite" in session.results["custom"]["notes"][0]
    assert session.timings_ms == {} and session.scores == {"custom": None}
    event.refresh_from_db()
    assert event.data["scores"] == {"custom": None}
