"""The background sender against a server that is down, slow, answering 429 or 500, or holding
requests: the agent's calls return at once, nothing raises, and every log is counted."""
from __future__ import annotations

import logging
import threading

from fault_server import Fault, free_port

from caseloop_client import Backoff


def test_a_server_that_is_down_costs_retries_then_counts_the_logs_failed(client_for):
    client = client_for(f"http://127.0.0.1:{free_port()}", max_retries=3)
    ids = [client.log(success=True, execution_time_ms=1) for _ in range(5)]
    assert all(ids)  # queued: the agent never sees the outage

    assert client.flush(timeout=10)
    stats = client.stats()
    assert (stats.sent, stats.failed, stats.retried, stats.dropped) == (0, 5, 3, 0)
    assert "ConnectError" in stats.last_error


def test_a_slow_server_times_out_and_the_batch_is_sent_again(fault_server, client_for):
    fault_server.script = [Fault(delay=1.5)]  # longer than the client's timeout
    client = client_for(fault_server.url, timeout=0.3)
    logged = [client.log(success=True, execution_time_ms=1) for _ in range(3)]

    assert client.flush(timeout=10)
    assert client.stats().retried == 1 and client.stats().sent == 3
    # The same ids both times: the server would store them once.
    assert [request.body for request in fault_server.received][0] == fault_server.received[1].body
    assert [log["id"] for log in fault_server.received[1].body] == logged


def test_429_waits_for_retry_after(fault_server, client_for):
    fault_server.script = [Fault(status=429, retry_after="1")]
    client = client_for(fault_server.url)
    client.log(success=True, execution_time_ms=1)

    assert client.flush(timeout=10)
    first, second = fault_server.received
    assert second.at - first.at >= 1.0  # the backoff alone would be milliseconds (FAST)
    assert (client.stats().retried, client.stats().sent) == (1, 1)


def test_500_then_ok(fault_server, client_for):
    fault_server.script = [Fault(status=500), Fault(status=502)]
    client = client_for(fault_server.url)
    client.log(success=False, execution_time_ms=1, error_type="TimeoutError")

    assert client.flush(timeout=10)
    assert len(fault_server.received) == 3
    stats = client.stats()
    assert (stats.sent, stats.retried, stats.failed) == (1, 2, 0)


def test_retries_are_bounded(fault_server, client_for):
    fault_server.default = Fault(status=503)
    client = client_for(fault_server.url, max_retries=2)
    client.log(success=True, execution_time_ms=1)

    assert client.flush(timeout=10)
    assert len(fault_server.received) == 3
    assert (client.stats().failed, client.stats().retried) == (1, 2)
    assert "HTTP 503" in client.stats().last_error


def test_the_agent_is_never_held_by_a_stuck_request(fault_server, client_for):
    """The server holds the first request until released; meanwhile the agent records 2,000
    runs. Every call returns (the test would hang otherwise) while the sender is still stuck."""
    release = threading.Event()
    fault_server.script = [Fault(hold=release)]
    client = client_for(fault_server.url, batch_size=10, max_queue=100_000)
    client.log(success=True, execution_time_ms=1)
    client.flush(timeout=0)
    fault_server.wait_for_requests(1)  # the first batch is now in the held request

    for index in range(2_000):
        with client.run(None) as run:
            run.add_tokens(input=index)
    assert not release.is_set() and len(fault_server.received) == 1
    assert client.stats().in_flight == 1 and client.stats().queued == 2_000
    assert client.flush(timeout=0.1) is False  # flush waits at most its timeout, and says so

    release.set()
    assert client.flush(timeout=30)
    assert client.stats().sent == 2_001 and len(fault_server.logs_received()) == 2_001


def test_a_full_queue_drops_the_oldest_and_counts_them(fault_server, client_for, caplog):
    client = client_for(fault_server.url, max_queue=10, batch_size=1_000, flush_interval=60)
    ids = [client.log(success=True, execution_time_ms=index) for index in range(25)]
    assert client.stats().dropped == 15 and client.stats().queued == 10

    with caplog.at_level(logging.WARNING, logger="caseloop_client"):
        assert client.flush(timeout=10)
    assert [log["id"] for log in fault_server.logs_received()] == ids[-10:]
    assert client.stats().sent == 10
    assert "15 log(s) dropped" in caplog.text  # reported once, by the sender, not per log


def test_a_body_too_large_is_split(fault_server, client_for):
    too_large = Fault(status=413, body={"detail": "Request body too large", "errors": {}})
    fault_server.script = [too_large, too_large]
    client = client_for(fault_server.url, batch_size=8, flush_interval=60)
    ids = [client.log(success=True, execution_time_ms=1) for _ in range(8)]

    assert client.flush(timeout=10)
    sizes = [len(request.body) for request in fault_server.received]
    assert sizes == [8, 4, 2, 2, 4]
    assert sorted(log["id"] for log in fault_server.received[-1].body + fault_server.received[-2].body
                  + fault_server.received[-3].body) == sorted(ids)
    assert client.stats().sent == 8


def test_close_with_the_server_down_returns_in_time_and_counts_what_is_left(client_for):
    client = client_for(f"http://127.0.0.1:{free_port()}", max_retries=1_000, backoff=Backoff(base=0.2, cap=0.2))
    for _ in range(30):
        client.log(success=True, execution_time_ms=1)

    stats = client.close(timeout=0.5)
    assert stats.sent == 0 and stats.failed == 30 and stats.queued == 0
    assert client.log(success=True, execution_time_ms=1) is None  # after close: dropped, counted
    assert client.stats().dropped == 1


def test_each_request_carries_the_key(fault_server, client_for):
    client = client_for(fault_server.url, key="cl_secret")
    client.log(success=True, execution_time_ms=1)
    assert client.flush(timeout=10)
    assert fault_server.received[0].headers["Authorization"] == "Token cl_secret"
    assert fault_server.received[0].path == "/api/logs/"


def test_a_batch_refused_as_a_whole_is_halved_until_the_bad_log_is_alone(fault_server, client_for):
    """A 400 that names no log (as the server's nesting limit answers): halves go again, and
    only the log the server refuses on its own is given up."""
    client = client_for(fault_server.url, batch_size=4, flush_interval=60)
    ids = [client.log(success=True, execution_time_ms=index) for index in range(4)]
    bad = ids[2]
    whole = Fault(status=400, body={"detail": "JSON nested more than 64 levels deep; flatten it.", "errors": {}})
    ok = Fault()
    # [0,1,2,3] refused; [0,1] stored; [2,3] refused; [2] refused; [3] stored.
    fault_server.script = [whole, ok, whole, whole, ok]
    assert client.flush(timeout=10)

    assert [[log["id"] for log in request.body] for request in fault_server.received] == [
        ids, ids[:2], ids[2:], [bad], ids[3:]
    ]
    stats = client.stats()
    assert (stats.sent, stats.failed, stats.retried) == (3, 1, 0)
    assert "nested more than 64" in stats.last_error


def test_a_key_without_the_scope_is_given_up_at_once(fault_server, client_for):
    fault_server.default = Fault(status=403, body={"detail": "This key lacks the logs:write scope.", "errors": {}})
    client = client_for(fault_server.url)
    client.log(success=True, execution_time_ms=1)

    assert client.flush(timeout=10)
    assert len(fault_server.received) == 1
    stats = client.stats()
    assert (stats.failed, stats.retried) == (1, 0) and "logs:write" in stats.last_error
