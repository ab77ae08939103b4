"""The client's tests run in the main suite (pytest.ini testpaths), on SQLite and PostgreSQL.

They test this checkout's source: `src/` goes first on the path, whatever copy is installed.
The live-server tests use the suite's own fixtures (an API key, cases) and pytest-django's
`live_server`: a real Caseloop answering over a real socket in a thread of this process.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fault_server import FaultServer  # noqa: E402

from caseloop_client import Backoff, Caseloop  # noqa: E402
from tests.conftest import _fresh_caches, api_key, make_case  # noqa: E402,F401 - fixtures shared with the suite

# Retries in milliseconds, not seconds: the tests wait on behaviour, not on the default backoff.
FAST = Backoff(base=0.01, cap=0.05)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def proxy(live_server) -> Iterator[FaultServer]:
    """A FaultServer in front of the live Caseloop: faults after the logs were stored."""
    with FaultServer(upstream=live_server.url) as server:
        yield server


@pytest.fixture
def client_for() -> Iterator:
    """`client_for(url, key=..., **options)`: a sync client with fast retries, closed after the
    test. Without `key` it sends one no server checks (the fault server's tests)."""
    made: list[Caseloop] = []

    def make(url: str, *, key: str = "cl_fault_server_does_not_check", **options) -> Caseloop:
        options.setdefault("backoff", FAST)
        options.setdefault("flush_interval", 0.05)
        options.setdefault("timeout", 5.0)
        client = Caseloop(url, key, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=1.0)
