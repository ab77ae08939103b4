"""Each API key may have a number of sessions queued or running at once, by tier; a post past
it is refused with 429 and a message saying why, and the key's next post after one of its
sessions ended is accepted again. Other keys are not counted against it."""
from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from agents.models import Session
from agents.sessions import services
from casebank.access import services as access_services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued_only(settings, monkeypatch):
    """Runner mode with no runner: posted sessions stay queued, so they count."""
    settings.AGENTS_RUNNER = True
    settings.AGENTS_SESSIONS_PER_KEY = {"standard": 3, "premium": 5}
    monkeypatch.setattr("core.task_queue.async_task", lambda *args, **kwargs: None)
    return settings


def client_for(tier: str) -> tuple[APIClient, object]:
    key, plain = access_services.api_key_create(name=f"quota-{tier}-{uuid.uuid4().hex[:8]}", tier=tier)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client, key


def post(client: APIClient, n: int = 0):
    return client.post("/api/sessions/", {"query": f"What is our refund policy? ({n})"}, format="json")


def test_it_refuses_a_post_past_the_standard_quota_with_429(queued_only):
    client, _ = client_for("standard")
    assert [post(client, i).status_code for i in range(3)] == [202, 202, 202]
    refused = post(client, 3)
    assert refused.status_code == 429
    body = refused.json()
    assert "3 sessions queued or running" in body["detail"] and "standard tier allows 3" in body["detail"]
    assert body["errors"] == {"sessions": ["At most 3 queued or running sessions per standard key."]}
    assert Session.objects.count() == 3  # nothing was stored for the refused post


def test_it_gives_premium_keys_their_own_larger_quota(queued_only):
    premium, _ = client_for("premium")
    assert [post(premium, i).status_code for i in range(6)] == [202] * 5 + [429]


def test_it_counts_each_key_on_its_own(queued_only):
    first, _ = client_for("standard")
    second, _ = client_for("standard")
    assert [post(first, i).status_code for i in range(4)] == [202, 202, 202, 429]
    assert post(second).status_code == 202  # another key's sessions are not this one's


def test_it_accepts_again_once_a_session_has_finished(queued_only):
    client, key = client_for("standard")
    ids = [post(client, i).json()["session_id"] for i in range(3)]
    assert post(client).status_code == 429
    # Running sessions count too; a finished one frees its place.
    Session.objects.filter(pk=ids[0]).update(status="running")
    assert post(client).status_code == 429
    services.session_crash(session=Session.objects.get(pk=ids[1]), error=RuntimeError("ended"))
    assert post(client).status_code == 202
    assert post(client).status_code == 429


def test_it_has_no_limit_when_the_tier_quota_is_zero(queued_only):
    queued_only.AGENTS_SESSIONS_PER_KEY = {"standard": 0, "premium": 5}
    client, _ = client_for("standard")
    assert {post(client, i).status_code for i in range(8)} == {202}


def test_it_leaves_sessions_without_a_key_unlimited(queued_only):
    for i in range(5):
        services.session_create(query=f"What is our refund policy? ({i})", actor="admin")
    assert Session.objects.count() == 5


@pytest.mark.postgres(reason="concurrent writers on separate connections")
def test_it_never_goes_past_the_quota_when_posts_race(queued_only):
    client, key = client_for("standard")
    codes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def one(n: int) -> None:
        racer = APIClient()
        racer.credentials(**client._credentials)
        start.wait()
        try:
            code = post(racer, n).status_code
        finally:
            connection.close()
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [202] * 3 + [429] * 5
    assert Session.objects.filter(api_key=key).count() == 3
