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
