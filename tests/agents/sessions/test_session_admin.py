"""Admin shows sessions with their steps, scores and timings, read-only."""
from __future__ import annotations

import pytest

from agents.models import Session
from agents.sessions import services

pytestmark = pytest.mark.django_db


def _finished_session(monkeypatch) -> Session:
    monkeypatch.setattr("core.task_queue.async_task", lambda *args: None)
    session = services.session_create(query="How many orders per region?", actor="tester")
    services.session_plan_set(session=session, steps=[{"agent": "data_analysis", "action": "sum"}], source="heuristic",
                              notes=[], case=None, similarity=None, usage=None, timings_ms={})
    services.session_evaluation_record(
        session=session, scores={"data_analysis": 0.93}, passed=True, method="heuristic", notes=[], threshold=0.6,
        usage=None, timings_ms={"plan": 12, "agents": {"data_analysis#1": 345}},
    )
    services.session_finish(session=session, passed=True, answer="42 orders.", errors={},
                            timings_ms={"plan": 12, "agents": {"data_analysis#1": 345}, "total": 480})
    return session


def test_it_lists_sessions_with_scores_and_times(admin_client_logged_in, monkeypatch):
    session = _finished_session(monkeypatch)
    page = admin_client_logged_in.get("/admin/agents/session/").content.decode()
    assert "How many orders per region?" in page and "data_analysis 0.93" in page and "480" in page
    detail = admin_client_logged_in.get(f"/admin/agents/session/{session.pk}/change/").content.decode()
    assert "data_analysis#1" in detail and "345" in detail  # per-agent timing
    assert "0.93" in detail and "evaluation" in detail  # scores and the steps inline
    assert 'name="_save"' not in detail  # read-only


def test_it_keeps_sessions_away_from_non_staff(client, django_user_model, monkeypatch):
    session = _finished_session(monkeypatch)
    user = django_user_model.objects.create_user("outsider", password="pw")
    client.force_login(user)
    assert client.get(f"/admin/agents/session/{session.pk}/change/").status_code == 302
