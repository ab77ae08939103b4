"""A client the agent forgot to close still delivers at interpreter exit (the atexit hook),
tested in a real child interpreter."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"


def _run_agent(code: str) -> subprocess.CompletedProcess:
    program = f"import sys; sys.path.insert(0, {str(SOURCE)!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_logs_queued_at_exit_are_sent(fault_server, kind):
    code = {
        "sync": f"""
            from caseloop_client import Caseloop
            client = Caseloop({fault_server.url!r}, "cl_x", flush_interval=3600, batch_size=1000)
            for index in range(7):
                client.log(success=True, execution_time_ms=index)
            print("exiting with", client.stats().queued, "queued")
        """,
        "async": f"""
            import asyncio
            from caseloop_client import AsyncCaseloop

            async def agent():
                client = AsyncCaseloop({fault_server.url!r}, "cl_x", flush_interval=3600, batch_size=1000)
                for index in range(7):
                    async with client.run(None) as run:
                        run.add_tokens(input=index)
                print("exiting with", client.stats().queued, "queued")

            asyncio.run(agent())
        """,
    }[kind]
    finished = _run_agent(code)

    assert finished.returncode == 0, finished.stderr
    assert "exiting with 7 queued" in finished.stdout
    assert len(fault_server.logs_received()) == 7


def test_exit_is_not_held_by_a_server_that_is_down():
    from fault_server import free_port

    finished = _run_agent(f"""
        from caseloop_client import Caseloop
        client = Caseloop("http://127.0.0.1:{free_port()}", "cl_x", flush_interval=3600, max_retries=1000)
        client.log(success=True, execution_time_ms=1)
    """)
    assert finished.returncode == 0, finished.stderr  # within the 5 s exit budget, or run() times out at 60


def test_a_batch_cut_off_by_the_end_of_the_loop_is_sent_at_exit(fault_server):
    """asyncio.run cancels the sender in the middle of a request the server holds: the batch goes
    back to the queue and the exit hook (called here as atexit would) sends it, same ids."""
    import asyncio
    import threading

    from fault_server import Fault

    from caseloop_client import AsyncCaseloop

    release = threading.Event()
    fault_server.script = [Fault(hold=release)]
    client = AsyncCaseloop(fault_server.url, "cl_x", flush_interval=0.01)

    async def agent() -> None:
        for index in range(3):
            client.log(success=True, execution_time_ms=index)
        for _ in range(1_000):  # until the request is at the server (10 s at most)
            if fault_server.received:
                return
            await asyncio.sleep(0.01)

    asyncio.run(agent())  # ends with the request unanswered: the sender task is cancelled
    assert client.stats().queued == 3 and client.stats().in_flight == 0
    client._send_at_exit()
    release.set()

    first, second = (request.body for request in fault_server.received)
    assert [log["id"] for log in second] == [log["id"] for log in first] and len(first) == 3
    assert client.stats().sent == 3
