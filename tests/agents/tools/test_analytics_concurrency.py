"""Analytics queries at once: ANALYTICS_CONCURRENCY_PER_KEY per API key and
ANALYTICS_CONCURRENCY_GLOBAL in all; over either the API answers 429 with Retry-After at once,
and a session's step waits for a slot instead (agents/tools/concurrency.py)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import AnalyticsSlot
from agents.tools.concurrency import analytics_slot
from agents.tools.workers import AgentTask, DataAnalysisAgent
from casebank.access import services as access_services

pytestmark = pytest.mark.django_db(transaction=True)
SQL = "SELECT region, COUNT(*) AS n FROM orders GROUP BY region"


def _client(name: str) -> tuple[object, APIClient]:
    key, plain = access_services.api_key_create(name=name)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return key, client


@pytest.fixture
def keys(db):
    return [_client(f"client-{i}") for i in range(3)]


def _ask(client: APIClient, sql: str = SQL):
    return client.post("/api/agents/data-analysis/", {"sql": sql}, format="json")


def test_a_key_over_its_limit_gets_429_with_retry_after_and_others_are_served(keys, analytics_db, settings):
    (key_a, client_a), (_key_b, client_b), _ = keys
    with analytics_slot(key_id=key_a.pk):
        refused = _ask(client_a)
        assert refused.status_code == 429
        assert refused["Retry-After"] == "5"  # the statement timeout: a running query ends by then
        assert "ANALYTICS_CONCURRENCY_PER_KEY" in refused.json()["detail"]
        assert _ask(client_b).status_code == 200
    assert _ask(client_a).status_code == 200


def test_over_the_global_limit_every_key_gets_429(keys, analytics_db, settings):
    (key_a, _), (key_b, _), (_key_c, client_c) = keys
    with analytics_slot(key_id=key_a.pk), analytics_slot(key_id=key_b.pk):
        refused = _ask(client_c)
        assert refused.status_code == 429 and "ANALYTICS_CONCURRENCY_GLOBAL" in refused.json()["detail"]
        # The refused key's own slot was handed back: with one global slot more it is served.
        settings.ANALYTICS_CONCURRENCY_GLOBAL = 3
        assert _ask(client_c).status_code == 200


def test_a_cached_answer_needs_no_slot(keys, analytics_db):
    (key_a, client_a), _, _ = keys
    assert _ask(client_a).json()["cached"] is False
    with analytics_slot(key_id=key_a.pk):
        again = _ask(client_a)
        assert again.status_code == 200 and again.json()["cached"] is True


def test_the_slots_are_handed_back_after_a_refusal_or_an_error(keys, analytics_db):
    (_, client_a), _, _ = keys
    assert _ask(client_a, "SELECT COUNT(*) FROM orders a, orders b").status_code == 400  # the cost check
    assert _ask(client_a, "SELECT nope FROM orders").status_code == 400
    assert _ask(client_a).status_code == 200
    assert not AnalyticsSlot.objects.filter(holder__gt="").exists()


def test_a_dead_holders_slot_frees_when_its_lease_passes(keys, analytics_db):
    (key_a, client_a), _, _ = keys
    with analytics_slot(key_id=key_a.pk):
        assert _ask(client_a).status_code == 429
        # As if the process holding it had been killed: nobody releases, the lease runs out.
        AnalyticsSlot.objects.filter(holder__gt="").update(until=timezone.now() - timedelta(seconds=1))
        assert _ask(client_a).status_code == 200


@pytest.mark.postgres(reason="many threads writing the slot rows at once")
def test_many_requests_of_one_key_at_once_run_one_at_a_time(keys, pg_demo_analytics, settings):
    settings.ANALYTICS_STATEMENT_TIMEOUT_MS = 1500
    settings.ANALYTICS_MAX_PLAN_ROWS = 10**15
    settings.ANALYTICS_MAX_PLAN_COST = 1e15
    (_, client_a), _, _ = keys
    slow = "SELECT COUNT(*) FROM orders a, orders b, orders c"
    start = threading.Barrier(6)

    def ask(_: int) -> int:
        start.wait()
        try:
            return _ask(client_a, slow).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(ask, range(6)))
    # One ran (and hit the statement timeout: 422), five were turned away at once.
    assert codes == [422, 429, 429, 429, 429, 429]


@pytest.mark.postgres(reason="a slot released from another thread")
def test_a_session_step_waits_for_a_slot_instead_of_failing(keys, pg_demo_analytics, settings):
    (key_a, _), _, _ = keys
    task = AgentTask(query="orders by region", sql=SQL, api_key_id=key_a.pk, slot_wait_s=0.3)
    with analytics_slot(key_id=key_a.pk):
        started = time.monotonic()
        busy = DataAnalysisAgent().run(task)
        assert busy.error_type == "AnalyticsBusy" and time.monotonic() - started >= 0.3
    held = threading.Event()

    def hold_briefly() -> None:
        with analytics_slot(key_id=key_a.pk):
            held.set()
            time.sleep(0.5)
        connection.close()

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    held.wait(5)
    output = DataAnalysisAgent().run(AgentTask(query="orders by region", sql=SQL, api_key_id=key_a.pk, slot_wait_s=5))
    holder.join()
    assert output.ok and output.data["rows"]
