"""A posted session rings the runners' doorbell at commit: PostgreSQL `NOTIFY`, or on SQLite a
Redis publish when `REDIS_URL` is set (the runners' side: tests/agents/runtime/test_runner_process.py)."""
from __future__ import annotations

import pytest
import redis
from django.db import transaction

from agents.sessions import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_post_on_sqlite_publishes_the_ring_at_commit(settings, redis_server):
    settings.AGENTS_RUNNER = True
    settings.REDIS_URL = redis_server.url
    listener = redis.Redis.from_url(redis_server.url).pubsub()
    listener.subscribe(services.DOORBELL_CHANNEL)
    assert listener.get_message(timeout=2)["type"] == "subscribe"
    with transaction.atomic():
        services.session_create(query="What is our refund policy?", actor="test")
        # Not before commit: a runner woken now would not see the row yet.
        if transaction.get_connection().vendor != "postgresql":
            assert listener.get_message(timeout=0.5) is None
    message = listener.get_message(timeout=2)
    if transaction.get_connection().vendor == "postgresql":
        assert message is None  # PostgreSQL rings with NOTIFY instead
    else:
        assert message is not None and message["channel"] == services.DOORBELL_CHANNEL.encode()
    listener.close()


def test_a_post_still_succeeds_when_redis_is_down(settings, redis_server):
    settings.AGENTS_RUNNER = True
    settings.REDIS_URL = redis_server.url
    redis_server.stop()
    session = services.session_create(query="What is our refund policy?", actor="test")
    assert session.status == "queued"
