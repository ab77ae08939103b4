"""Redis stops: the API keeps answering from the database and L1, /health names the cache.

A throwaway redis-server on a free port plays the shared cache; the machine's Redis is never
touched.
"""
from __future__ import annotations

import logging
import time

import pytest
from django.core.cache import caches

from casebank.access.throttling import ApiKeyTierThrottle
from core import cache as layered
from core import metrics
from tests.support.redis_server import PASSWORD

pytestmark = pytest.mark.django_db


def test_it_shares_values_through_redis_while_it_runs(layered_on_redis):
    server, client = layered_on_redis
    calls = []
    value = layered.layered_get_or_set("t:shared", lambda: calls.append(1) or {"n": 3}, 60)
    assert value == {"n": 3} and calls == [1]
    assert any(b"t:shared" in key for key in client.keys("*"))
    caches["l1"].clear()  # another replica: empty memory, same Redis
    before = metrics.CACHE_REQUESTS.labels(layer="l2", result="hit")._value.get()
    assert layered.layered_get_or_set("t:shared", lambda: calls.append(1) or {"n": 4}, 60) == {"n": 3}
    assert calls == [1]
    assert metrics.CACHE_REQUESTS.labels(layer="l2", result="hit")._value.get() == before + 1


def test_it_serves_from_l1_and_the_source_when_redis_stops(layered_on_redis):
    server, _ = layered_on_redis
    layered.layered_get_or_set("t:warm", lambda: "from-db", 60)
    server.stop()
    errors_before = metrics.CACHE_REQUESTS.labels(layer="l2", result="error")._value.get()
    assert layered.layered_get_or_set("t:warm", lambda: "recomputed", 60) == "from-db"  # L1
    assert layered.layered_get_or_set("t:cold", lambda: "from-source", 60) == "from-source"
    assert metrics.CACHE_REQUESTS.labels(layer="l2", result="error")._value.get() == errors_before + 1
    # Backed off: the next miss does not wait on the dead server again.
    started = time.perf_counter()
    assert layered.layered_get_or_set("t:cold2", lambda: "again", 60) == "again"
    assert time.perf_counter() - started < 0.5


def test_it_keeps_the_api_serving_when_redis_stops(layered_on_redis, api, anonymous_api, make_case):
    server, _ = layered_on_redis
    case = make_case()
    assert api.post("/api/cases/search/", {"query": "monthly revenue", "mode": "bm25"}, format="json").status_code == 200
    server.stop()
    # Throttling, search statistics and reads all touch the cache; none may fail.
    search = api.post("/api/cases/search/", {"query": "monthly revenue", "mode": "bm25"}, format="json")
    assert search.status_code == 200, search.content
    assert str(case.id) in search.content.decode()
    assert api.get(f"/api/cases/{case.id}/").status_code == 200
    logs = api.post("/api/logs/", [{"case_id": str(case.id), "success": True, "execution_time_ms": 12}], format="json")
    assert logs.status_code == 201

    health = anonymous_api.get("/health")
    assert health.status_code == 200  # the cache is not a required part
    body = health.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "up"


def test_it_never_logs_or_shows_the_redis_password(layered_on_redis, anonymous_api, caplog):
    server, _ = layered_on_redis
    server.stop()
    with caplog.at_level(logging.DEBUG):
        layered.layered_get_or_set("t:secret", lambda: 1, 60)
        caches["default"].get("anything")  # the ignoring alias logs its failure too
        health = anonymous_api.get("/health")
    assert health.json()["checks"]["cache"]["status"] == "down"
    assert PASSWORD not in health.content.decode()
    assert PASSWORD not in caplog.text
    assert caplog.text  # the failures were logged, just without the secret


def test_it_counts_rate_limits_atomically_in_redis(layered_on_redis, api, settings, monkeypatch):
    _, client = layered_on_redis
    # Mid-window, so the three requests cannot straddle a window boundary.
    monkeypatch.setattr(ApiKeyTierThrottle, "timer", staticmethod(lambda: 29_000_000 * 60.0 + 30))
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"standard": "2/min", "premium": "2/min", "anon": "1/min"}}
    statuses = [api.get("/api/cases/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    counters = client.keys("*throttle_standard_*")
    assert counters, "the counter lives in Redis"
    assert sum(int(client.get(key)) for key in counters) == 3
