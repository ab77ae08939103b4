"""Cursor pages over logs that share a created_at: every log exactly once.

A batch often carries one timestamp for all its logs. Ordered by created_at alone, PostgreSQL
returns ties in any order, so the cursor's offset within a tie skipped some logs and repeated
others; the id breaks the ties.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

pytestmark = pytest.mark.django_db


def _page_through(api, url: str) -> list[str]:
    page = api.get(url).json()
    seen = [log["id"] for log in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [log["id"] for log in page["results"]]
    return seen


def test_it_lists_every_log_of_batches_sharing_one_created_at_exactly_once(api, make_case):
    case = make_case()
    moment = (timezone.now() - timedelta(minutes=3)).isoformat()
    stored = []
    for _batch in range(3):
        logs = [{"case_id": str(case.pk), "success": i % 2 == 0, "execution_time_ms": 10 + i, "created_at": moment}
                for i in range(100)]
        stored += api.post("/api/logs/", logs, format="json").json()["ids"]
    stored += api.post("/api/logs/", [{"success": True, "execution_time_ms": 5}] * 1, format="json").json()["ids"]

    everything = _page_through(api, "/api/logs/?page_size=37")
    of_the_case = _page_through(api, f"/api/logs/?page_size=37&case={case.pk}")

    assert sorted(everything) == sorted(stored) and len(everything) == 301
    assert sorted(of_the_case) == sorted(stored[:300])
    # Newest first, ties by id descending.
    assert everything[1:] == sorted(stored[:300], reverse=True)


def test_the_order_is_created_at_then_id(api):
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/logs/").status_code == 200
    [listing] = [q["sql"] for q in queries.captured_queries if "reflection_executionlog" in q["sql"]]
    assert 'ORDER BY "reflection_executionlog"."created_at" DESC, "reflection_executionlog"."id" DESC' in listing


@pytest.mark.postgres(reason="PostgreSQL plan")
def test_an_index_serves_the_order_without_a_sort(api):
    with CaptureQueriesContext(connection) as queries:
        page = api.get("/api/logs/?page_size=10").json()
    assert page["results"] == []
    [listing] = [q["sql"] for q in queries.captured_queries if "reflection_executionlog" in q["sql"]]
    with connection.cursor() as cursor:
        # An empty, unvacuumed table favours a sequential scan; what matters is that the index can.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {listing}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan Backward using log_created_id_idx" in plan and "Sort" not in plan, plan
