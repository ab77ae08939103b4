"""A key reads its own logs only (issue #17: `GET /api/logs/` listed every key's sessions and
`?session=` returned their runs); a reviewer's key, with the `reflection` scope and admin's view
permission on logs, reads all of them."""
from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from agents.models import Session, SessionStatus
from agents.sessions import services as session_services
from reflection.logs import services as ingestion
from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db


def _send(client, *, session: uuid.UUID | None = None, count: int = 1) -> list[str]:
    logs = [{"success": True, "execution_time_ms": 5, "session_id": str(session) if session else None}
            for _ in range(count)]
    response = client.post("/api/logs/", logs, format="json")
    assert response.status_code == 201
    return response.json()["ids"]


def _listed(client, **filters) -> set[str]:
    response = client.get("/api/logs/", filters)
    assert response.status_code == 200
    return {log["id"] for log in response.json()["results"]}


def test_a_key_lists_only_its_own_logs(api_client):
    alice, mallory = api_client(), api_client()
    session = uuid.uuid4()
    theirs = set(_send(alice, session=session, count=3))
    mine = set(_send(mallory))
    assert ExecutionLog.objects.filter(api_key=alice.api_key).count() == 3
    assert _listed(alice) == theirs
    assert _listed(mallory) == mine
    # Knowing the session id does not help.
    assert _listed(mallory, session=str(session)) == set()
    assert _listed(alice, session=str(session)) == theirs


def test_the_batch_owner_is_stored_on_both_insert_paths(api_client, make_case):
    alice = api_client()
    case = make_case()
    fixed = str(uuid.uuid4())
    body = [{"id": fixed, "case_id": str(case.pk), "success": False, "error_type": "Timeout",
             "error_message": "took 9000 ms", "execution_time_ms": 9000}]
    assert alice.post("/api/logs/", body, format="json").json()["created"] == 1
    # Re-sent with a new log: the second insert path (skipping stored ids) keeps the owner too.
    body.append({"success": True, "execution_time_ms": 3})
    assert alice.post("/api/logs/", body, format="json").json()["created"] == 1
    assert ExecutionLog.objects.filter(api_key=alice.api_key).count() == 2
    # Someone re-sending another's id does not take the log over.
    assert api_client().post("/api/logs/", body[:1], format="json").json()["created"] == 0
    assert ExecutionLog.objects.get(pk=fixed).api_key_id == alice.api_key.pk


def test_a_reviewers_key_lists_every_log(api_client, reviewer):
    alice = api_client()
    theirs = set(_send(alice, count=2))
    # An imported log (import_logs) belongs to no key: only an all-logs reader sees it.
    result = ingestion.logs_ingest(records=ingestion.parse_batch([{"success": True, "execution_time_ms": 1}]))
    imported = {str(log_id) for log_id in result.ids}
    auditor = api_client(scopes=["cases:read", "reflection"], user=reviewer)
    assert _listed(auditor) == theirs | imported
    # The scope alone is not enough: the user must be allowed to read logs in admin too.
    assert _listed(api_client(scopes=["cases:read", "reflection"])) == set()
    # And the permission alone neither.
    assert _listed(api_client(scopes=["cases:read"], user=reviewer)) == set()


def test_a_sessions_log_belongs_to_the_key_that_started_it(api_client, monkeypatch):
    monkeypatch.setattr("core.task_queue.async_task", lambda *args, **kwargs: None)
    alice, mallory = api_client(), api_client()
    session_id = alice.post("/api/sessions/", {"query": "How many orders?"}, format="json").json()["session_id"]
    now = timezone.now()
    Session.objects.filter(pk=session_id).update(status=SessionStatus.FAILED, passed=False, started_at=now,
                                                 finished_at=now)
    session_services.session_outcome_record(session=Session.objects.get(pk=session_id))
    assert ExecutionLog.objects.get(pk=session_id).api_key_id == alice.api_key.pk
    assert _listed(alice, session=session_id) == {session_id}
    assert _listed(mallory, session=session_id) == set()
    assert session_id not in _listed(mallory)
