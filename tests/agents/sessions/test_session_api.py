"""Session API input validation and errors: always JSON 4xx, never 5xx."""
from __future__ import annotations

import uuid

import pytest

from agents.models import Session, SessionEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("body", [{}, {"query": ""}, {"query": "   "}, {"query": "x" * 5001}, {"query": ["a list"]}, {"query": "ok", "sql": "x" * 10_001}])
def test_it_refuses_bad_input(api, body):
    response = api.post("/api/sessions/", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] and response.json()["errors"]
    assert Session.objects.count() == 0


def test_it_needs_authentication(anonymous_api):
    assert anonymous_api.post("/api/sessions/", {"query": "hi"}, format="json").status_code == 401
    assert anonymous_api.get(f"/api/sessions/{uuid.uuid4()}").status_code == 401


def test_it_answers_404_for_an_unknown_session(api):
    response = api.get(f"/api/sessions/{uuid.uuid4()}")
    assert response.status_code == 404 and response.json()["detail"] == "Session not found."


def test_it_queues_the_session_and_enqueues_its_run_on_commit(api, django_capture_on_commit_callbacks, enqueued):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/sessions/", {"query": "How many orders?"}, format="json")
    assert response.status_code == 202
    session = Session.objects.get(pk=response.json()["session_id"])
    assert session.status == "queued" and session.created_by == "api:test-client"
    assert enqueued == [("agents.sessions.tasks.run_session", str(session.id))]
    assert list(SessionEvent.objects.filter(session=session).values_list("sequence", "phase")) == [(1, "queued")]
    state = api.get(f"/api/sessions/{session.id}").json()
    assert state["status"] == "queued" and state["finished_at"] is None


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_session_only_once(api, monkeypatch, knowledge, no_llm):
    from agents.runtime import supervisor

    monkeypatch.setattr("core.task_queue.async_task", lambda *args: None)
    session_id = api.post("/api/sessions/", {"query": "What is our refund policy?"}, format="json").json()["session_id"]
    assert supervisor.run_session(session_id=session_id) is not None
    events = SessionEvent.objects.filter(session_id=session_id).count()
    assert supervisor.run_session(session_id=session_id) is None  # a re-delivered task is a no-op
    assert SessionEvent.objects.filter(session_id=session_id).count() == events
