"""`AsyncCaseloop`: the same surface on an event loop, against the live server and the faults."""
from __future__ import annotations

import asyncio
import threading

import pytest
from conftest import FAST
from fault_server import Fault, free_port

from caseloop_client import AsyncCaseloop, CaseloopError
from reflection.models import ExecutionLog


def test_it_retrieves_and_records_runs_on_a_loop(live_server, api_key, make_case):
    case = make_case()

    async def agent() -> tuple[list, list[str]]:
        async with AsyncCaseloop(live_server.url, api_key[1], backoff=FAST, flush_interval=0.05) as client:
            hits = await client.retrieve("monthly revenue by region", k=1, mode="bm25")
            async with client.run(hits[0]) as run:
                run.add_tokens(input=5, output=7)
            with pytest.raises(KeyError):
                async with client.run(hits[0]) as failed:
                    raise KeyError("region")
            assert await client.flush(timeout=10)
            assert client.stats().sent == 2
            return hits, [run.log["id"], failed.log["id"]]

    hits, (ok_id, failed_id) = asyncio.run(agent())
    assert hits[0].id == str(case.id) and hits[0].version == 1
    assert ExecutionLog.objects.get(id=ok_id).tokens_out == 7
    failed = ExecutionLog.objects.get(id=failed_id)
    assert (failed.success, failed.error_type, failed.error_message) == (False, "KeyError", "'region'")


def test_a_lost_answer_is_retried_without_storing_twice(proxy, api_key, make_case):
    case = make_case()
    proxy.script = [Fault(status=500), Fault(hang_up=True)]

    async def agent() -> None:
        client = AsyncCaseloop(proxy.url, api_key[1], backoff=FAST, flush_interval=60)
        for index in range(30):
            client.log(success=True, execution_time_ms=index, case_id=case.id)
        assert await client.flush(timeout=20)
        stats = await client.close()
        assert (stats.sent, stats.duplicates, stats.retried) == (30, 30, 2)

    asyncio.run(agent())
    assert ExecutionLog.objects.filter(case_id=case.id).count() == 30


def test_429_then_ok_honours_retry_after(fault_server):
    fault_server.script = [Fault(status=429, retry_after="1")]

    async def agent() -> None:
        client = AsyncCaseloop(fault_server.url, "cl_x", backoff=FAST, flush_interval=0.05)
        client.log(success=True, execution_time_ms=1)
        assert await client.flush(timeout=10)
        await client.close()

    asyncio.run(agent())
    first, second = fault_server.received
    assert second.at - first.at >= 1.0


def test_down_then_close_counts_failures_and_never_raises():
    async def agent() -> None:
        client = AsyncCaseloop(f"http://127.0.0.1:{free_port()}", "cl_x", backoff=FAST, max_retries=2)
        for _ in range(4):
            client.log(success=True, execution_time_ms=1)
        assert await client.flush(timeout=10)
        stats = await client.close()
        assert (stats.sent, stats.failed, stats.retried) == (0, 4, 2)
        with pytest.raises(CaseloopError, match="closed"):
            await client.retrieve("anything")

    asyncio.run(agent())


def test_the_loop_is_never_held_by_a_slow_server(fault_server):
    """While the server sits on the first request, the agent's coroutine records 500 runs and
    keeps going; the sender catches up afterwards."""
    release = threading.Event()
    fault_server.script = [Fault(hold=release)]

    async def agent() -> None:
        client = AsyncCaseloop(fault_server.url, "cl_x", backoff=FAST, batch_size=10, flush_interval=0.01)
        client.log(success=True, execution_time_ms=1)
        for _ in range(1_000):  # until the first batch is in the held request (10 s at most)
            if fault_server.received:
                break
            await asyncio.sleep(0.01)
        for _ in range(500):
            async with client.run(None):
                pass
        assert client.stats().in_flight == 1 and client.stats().queued == 500
        release.set()
        assert await client.flush(timeout=20)
        assert client.stats().sent == 501
        await client.close()

    asyncio.run(agent())
