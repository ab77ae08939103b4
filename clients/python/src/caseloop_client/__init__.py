"""Caseloop's Python client: retrieve cases with the plan to run, record runs in the background.

    from caseloop_client import Caseloop

    client = Caseloop("http://localhost:8000", api_key="cl_...")
    hit = client.retrieve("monthly revenue by region")[0]
    with client.run(hit) as run:
        ...  # follow hit.plan
        run.add_tokens(input=812, output=96)
    client.close()
"""
from __future__ import annotations

from caseloop_client._http import ApiError, CaseloopError, CaseloopUnavailable
from caseloop_client.async_client import AsyncCaseloop
from caseloop_client.buffer import Stats
from caseloop_client.cases import CaseHit
from caseloop_client.client import Caseloop
from caseloop_client.delivery import Backoff
from caseloop_client.runs import Run

__all__ = [
    "ApiError",
    "AsyncCaseloop",
    "Backoff",
    "CaseHit",
    "Caseloop",
    "CaseloopError",
    "CaseloopUnavailable",
    "Run",
    "Stats",
]
__version__ = "0.1.0"
