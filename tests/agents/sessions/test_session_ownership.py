"""A session belongs to the API key that started it: another key can neither read it, stream it
nor see it listed (IDOR), and gets the same 404 as for an unknown id."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Session
from agents.sessions import services
from casebank.access import services as access_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_api(db) -> APIClient:
    _, plain = access_services.api_key_create(name="other-client")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    monkeypatch.setattr("core.task_queue.async_task", lambda *args: None)


def _post(client: APIClient, query: str) -> str:
    response = client.post("/api/sessions/", {"query": query}, format="json")
    assert response.status_code == 202
    return response.json()["session_id"]


def test_it_records_the_key_and_its_user_as_owner(api, api_key):
    session = Session.objects.get(pk=_post(api, "How many orders?"))
    assert session.api_key == api_key[0] and session.owner == api_key[0].user


def test_it_answers_404_for_another_keys_session(api, other_api):
    mine = _post(api, "How many orders?")
    assert api.get(f"/api/sessions/{mine}").status_code == 200
    response = other_api.get(f"/api/sessions/{mine}")
    unknown = other_api.get(f"/api/sessions/{uuid.uuid4()}")
    assert response.status_code == 404 and response.json() == unknown.json()


def test_it_answers_404_for_a_session_no_key_owns(api):
    session = services.session_create(query="made by a command", actor="manage.py")
    assert api.get(f"/api/sessions/{session.id}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_stream_another_keys_session(api, other_api, api_key):
    mine = _post(api, "How many orders?")
    _, other_plain = access_services.api_key_create(name="stream-outsider")
    response = async_to_sync(AsyncClient().get)(
        f"/api/sessions/{mine}/stream", headers={"Authorization": f"Token {other_plain}"},
    )
    assert response.status_code == 404 and response.json()["detail"] == "Session not found."


def test_it_lists_only_the_callers_sessions_newest_first(api, other_api):
    first, second = _post(api, "first question"), _post(api, "second question")
    theirs = _post(other_api, "their question")
    page = api.get("/api/sessions/").json()
    assert [s["id"] for s in page["results"]] == [second, first]
    assert [s["id"] for s in other_api.get("/api/sessions/").json()["results"]] == [theirs]


def test_it_filters_the_list_by_status_and_time(api):
    old, new = _post(api, "old question"), _post(api, "new question")
    Session.objects.filter(pk=old).update(status="failed", created_at=timezone.now() - timedelta(days=2))
    assert [s["id"] for s in api.get("/api/sessions/?status=failed").json()["results"]] == [old]
    assert [s["id"] for s in api.get("/api/sessions/?status=queued").json()["results"]] == [new]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert [s["id"] for s in api.get("/api/sessions/", {"created_after": since}).json()["results"]] == [new]
    assert [s["id"] for s in api.get("/api/sessions/", {"created_before": since}).json()["results"]] == [old]


def test_it_pages_the_list_with_a_cursor_without_skipping_or_repeating(api):
    ids = {_post(api, f"question {n}") for n in range(7)}
    Session.objects.update(created_at=timezone.now())  # ties on created_at: the id orders them
    seen: list[str] = []
    url: str | None = "/api/sessions/?page_size=3"
    while url:
        page = api.get(url).json()
        seen += [s["id"] for s in page["results"]]
        url = page["next"]
    assert len(seen) == 7 and set(seen) == ids


@pytest.mark.parametrize("query", ["status=nope", "created_after=yesterday", "page_size=abc", "cursor=garbage"])
def test_it_refuses_bad_list_filters_with_json(api, query):
    response = api.get(f"/api/sessions/?{query}")
    if "page_size" in query:  # DRF falls back to the default size, as for the logs
        assert response.status_code == 200
        return
    assert response.status_code in (400, 404) and response.json()["detail"]


def test_it_needs_a_key_to_list(anonymous_api):
    assert anonymous_api.get("/api/sessions/").status_code == 401
