"""Agent results live in the layered cache: L1 in this process, L2 in the shared Redis.

The analytics database is deleted between the two calls, so an answer after that can only have
come from the cache; a throwaway redis-server plays the L2 another replica shares.
"""
from __future__ import annotations

import pytest
from django.core.cache import caches

from tests.ops.test_metrics import _value

pytestmark = pytest.mark.django_db
SQL = "SELECT segment, COUNT(*) AS customers FROM customers GROUP BY segment ORDER BY segment"


def _ask(api) -> dict:
    response = api.post("/api/agents/data-analysis/", {"sql": SQL}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _lookups(anonymous_api) -> dict[str, float]:
    body = anonymous_api.get("/metrics").content.decode()
    return {
        result: _value(body, "caseloop_agent_cache_requests_total", f'{{agent="data_analysis",result="{result}"}}', 0)
        for result in ("hit", "miss")
    } | {"ratio": _value(body, "caseloop_agent_cache_hit_ratio", '{agent="data_analysis"}', 0)}


def test_it_keeps_results_in_this_process_memory_not_the_plain_cache(api, anonymous_api, analytics_db, no_llm):
    before = _lookups(anonymous_api)
    first = _ask(api)
    assert first["cached"] is False
    assert caches["l1"].get(first["cache_key"]) is not None
    assert caches["default"].get(first["cache_key"]) is None
    analytics_db.unlink()
    second = _ask(api)
    assert second["cached"] is True and second["rows"] == first["rows"]
    after = _lookups(anonymous_api)
    assert after["miss"] - before["miss"] == 1 and after["hit"] - before["hit"] == 1
    assert after["ratio"] == pytest.approx(after["hit"] / (after["hit"] + after["miss"]))


def test_it_shares_results_with_other_replicas_through_redis(api, analytics_db, no_llm, layered_on_redis):
    _, client = layered_on_redis
    first = _ask(api)
    assert first["cached"] is False
    assert any(first["cache_key"].encode() in key for key in client.keys("*"))
    caches["l1"].clear()  # another replica: its own empty memory, the same Redis
    analytics_db.unlink()
    second = _ask(api)
    assert second["cached"] is True and second["rows"] == first["rows"]
    assert caches["l1"].get(first["cache_key"]) is not None  # promoted to this replica's L1
