"""The client against a live Caseloop (pytest-django's `live_server`): retrieve, record runs,
and logs stored exactly once however often they are sent."""
from __future__ import annotations

import threading
import time

import pytest
from fault_server import Fault

from casebank.cases import services as case_services
from caseloop_client import ApiError, CaseHit, CaseloopUnavailable
from reflection.models import ExecutionLog


@pytest.fixture
def live_client(live_server, api_key, client_for):
    return client_for(live_server.url, key=api_key[1])


def test_it_retrieves_cases_with_their_plan_and_version(live_client, make_case):
    case = make_case()
    case_services.case_update(case=case, actor="tester", plan=[{"agent": "sql", "action": "GROUP BY month, region"}])
    make_case(title="Churn by cohort", query="Customer churn by signup cohort", plan="Cohort table")

    hits = live_client.retrieve("monthly revenue by region", k=2, mode="bm25")

    assert [hit.id for hit in hits][0] == str(case.id)
    best = hits[0]
    assert isinstance(best, CaseHit)
    assert best.version == 2
    assert best.plan == [{"agent": "sql", "action": "GROUP BY month, region"}]
    assert best.title == "Monthly revenue by region"
    assert best.status == "active" and best.warning is False and best.score > 0
    assert best.raw["id"] == str(case.id)


def test_it_records_a_timed_run_with_tokens_and_cost(live_client, make_case):
    case = make_case()
    [hit] = live_client.retrieve("monthly revenue by region", k=1, mode="bm25")
    with live_client.run(hit, model="gpt-4o-mini", context={"step": 1}) as run:
        time.sleep(0.05)
        run.add_tokens(input=812, output=96)
        run.add_tokens(input=8)
        run.set_cost(0.0123)
    assert live_client.flush(timeout=10)

    log = ExecutionLog.objects.get(id=run.log["id"])
    assert (log.case_id, log.case_version, log.success) == (case.id, 1, True)
    assert log.execution_time_ms >= 50
    assert (log.tokens_in, log.tokens_out, float(log.cost_usd)) == (820, 96, pytest.approx(0.0123))
    assert log.model == "gpt-4o-mini" and log.context == {"step": 1}
    assert live_client.stats().sent == 1


def test_an_exception_in_the_block_is_a_failure_and_goes_on(live_client, make_case):
    case = make_case()
    with pytest.raises(ValueError, match="no such column: regon"):
        with live_client.run(case.id) as run:
            raise ValueError("no such column: regon")
    with live_client.run(str(case.id)) as marked:
        marked.fail("row limit reached", error_type="LimitError")
    with live_client.run(case.id):
        pass  # unmarked: a success
    assert live_client.flush(timeout=10)

    failed = ExecutionLog.objects.get(id=run.log["id"])
    assert (failed.success, failed.error_type, failed.error_message) == (False, "ValueError", "no such column: regon")
    assert failed.case_version == 1  # no version given: the server takes the current one
    limited = ExecutionLog.objects.get(id=marked.log["id"])
    assert (limited.success, limited.error_type) == (False, "LimitError")
    assert ExecutionLog.objects.filter(case_id=case.id, success=True).count() == 1


def test_many_logs_go_in_batches_and_each_is_stored_once(live_server, api_key, client_for, make_case):
    case = make_case()
    client = client_for(live_server.url, key=api_key[1], batch_size=100, flush_interval=60)
    ids = [client.log(success=index % 3 != 0, execution_time_ms=index, case_id=case.id) for index in range(250)]
    assert client.flush(timeout=20)

    assert ExecutionLog.objects.filter(case_id=case.id).count() == 250
    assert set(map(str, ExecutionLog.objects.values_list("id", flat=True))) == set(ids)
    stats = client.stats()
    assert (stats.sent, stats.failed, stats.dropped, stats.queued, stats.in_flight) == (250, 0, 0, 0, 0)


def test_a_lost_answer_is_retried_without_storing_twice(proxy, api_key, client_for, make_case):
    """The proxy forwards each batch to the live server, which stores it, then answers 500 or
    hangs up: the client sends again and the server recognises the ids."""
    case = make_case()
    proxy.script = [Fault(status=500), Fault(hang_up=True), Fault(status=503)]
    client = client_for(proxy.url, key=api_key[1], batch_size=50, flush_interval=60)
    for index in range(40):
        client.log(success=True, execution_time_ms=index, case_id=case.id)
    assert client.flush(timeout=20)

    assert len(proxy.received) == 4  # three lost answers, then one that arrived
    assert ExecutionLog.objects.filter(case_id=case.id).count() == 40
    stats = client.stats()
    assert (stats.sent, stats.duplicates, stats.retried, stats.failed) == (40, 40, 3, 0)


def test_a_log_the_server_refuses_is_given_up_and_the_rest_of_its_batch_stored(live_client, make_case):
    case = make_case()
    good = [live_client.log(success=True, execution_time_ms=5, case_id=case.id) for _ in range(3)]
    live_client.log(success=True, execution_time_ms=5, case_id="3f1c2a9e-0000-4000-8000-000000000001")
    live_client.log(success=True, execution_time_ms=5, case_id=case.id, case_version=7)  # past the current
    live_client.log(success=True, execution_time_ms=5, case_id="not-a-uuid")
    assert live_client.flush(timeout=10)

    assert sorted(map(str, ExecutionLog.objects.values_list("id", flat=True))) == sorted(good)
    stats = live_client.stats()
    assert (stats.sent, stats.failed) == (3, 3)
    assert "HTTP 400" in stats.last_error


def test_hostile_values_are_cleaned_so_the_server_stores_the_log(live_client, make_case):
    case = make_case()
    with live_client.run(case.id, model="m" * 500, context={"rows": float("nan"), "obj": object()}) as run:
        run.add_tokens(input=10**12, output=-5)
        run.set_cost(float("inf"))
        run.fail(RuntimeError("x\x00" * 20_000))
    live_client.log(success=False, execution_time_ms=float("nan"), case_id=case.id, context={"big": "x" * 100_000},
                    error_type="E" * 1_000, tokens_in="many", created_at=None)  # type: ignore[arg-type]
    assert live_client.flush(timeout=10)

    assert live_client.stats().sent == 2, live_client.stats()
    log = ExecutionLog.objects.get(id=run.log["id"])
    assert log.tokens_in == 2**31 - 1 and log.tokens_out == 0 and float(log.cost_usd) == 0
    assert len(log.model) == 100 and len(log.error_message) == 10_000 and "\x00" not in log.error_message
    assert "dropped" in ExecutionLog.objects.exclude(id=run.log["id"]).get().context["caseloop_client"]
    assert log.context["rows"] is None and log.context["obj"].startswith("<object")


def test_a_wrong_key_raises_on_retrieve_and_gives_logs_up(live_server, client_for):
    client = client_for(live_server.url, key="cl_wrong")
    with pytest.raises(ApiError) as raised:
        client.retrieve("anything")
    assert raised.value.status == 401
    client.log(success=True, execution_time_ms=1)
    assert client.flush(timeout=10)
    stats = client.stats()
    assert (stats.sent, stats.failed, stats.retried) == (0, 1, 0)
    assert ExecutionLog.objects.count() == 0


def test_bad_search_input_is_the_servers_clear_error(live_client):
    with pytest.raises(ApiError) as raised:
        live_client.retrieve("x" * 3_000, k=500, mode="psychic")
    assert raised.value.status == 400
    assert set(raised.value.errors) >= {"query", "k", "mode"}


def test_retrieve_from_a_server_that_is_down_raises_unavailable(client_for):
    from fault_server import free_port

    with pytest.raises(CaseloopUnavailable):
        client_for(f"http://127.0.0.1:{free_port()}").retrieve("anything")


def test_get_case_returns_the_case(live_client, make_case):
    case = make_case()
    assert live_client.get_case(case.id)["title"] == "Monthly revenue by region"
    with pytest.raises(ApiError) as raised:
        live_client.get_case("3f1c2a9e-0000-4000-8000-000000000001")
    assert raised.value.status == 404


def _nested(levels: int) -> dict:
    context: dict = {"leaf": 1}
    for _ in range(levels - 1):
        context = {"next": context}
    return context


def test_a_deep_context_never_costs_the_batch(live_client, make_case):
    """The server refuses a body nested over 64 levels as a whole (no log named): the client
    keeps the deepest context the server takes and replaces a deeper one with a note."""
    case = make_case()
    deepest = live_client.log(success=True, execution_time_ms=1, case_id=case.id, context=_nested(62))
    too_deep = live_client.log(success=True, execution_time_ms=1, case_id=case.id, context=_nested(63))
    far_too_deep = live_client.log(success=True, execution_time_ms=1, case_id=case.id, context=_nested(5_000))
    assert live_client.flush(timeout=10)

    assert live_client.stats().sent == 3, live_client.stats()
    assert ExecutionLog.objects.get(id=deepest).context == _nested(62)
    assert "nested more than 62" in ExecutionLog.objects.get(id=too_deep).context["caseloop_client"]
    assert "not JSON" in ExecutionLog.objects.get(id=far_too_deep).context["caseloop_client"]


def test_many_threads_share_one_client(live_server, api_key, client_for, make_case):
    case = make_case()
    client = client_for(live_server.url, key=api_key[1], batch_size=200)
    recorded: list[str] = []
    lock = threading.Lock()

    def agent() -> None:
        for _ in range(300):
            with client.run(case.id) as run:
                run.add_tokens(input=1)
            with lock:
                recorded.append(run.log["id"])

    threads = [threading.Thread(target=agent) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout=30)

    assert len(set(recorded)) == 2_400
    assert ExecutionLog.objects.filter(case_id=case.id).count() == 2_400
    assert client.stats().sent == 2_400


def test_the_servers_own_throttle_is_waited_out(live_server, api_key, client_for, make_case, settings):
    """The real rate limit (2 requests a second for this key's tier): the sender gets 429 with
    Retry-After, waits it out and stores every log once."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "standard": "2/s"},
    }
    case = make_case()
    client = client_for(live_server.url, key=api_key[1], batch_size=1, flush_interval=60)
    ids = [client.log(success=True, execution_time_ms=index, case_id=case.id) for index in range(6)]
    assert client.flush(timeout=30)

    stats = client.stats()
    assert stats.retried >= 1 and "HTTP 429" in stats.last_error, stats
    assert (stats.sent, stats.failed) == (6, 0)
    assert sorted(map(str, ExecutionLog.objects.filter(case_id=case.id).values_list("id", flat=True))) == sorted(ids)
