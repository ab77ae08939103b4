"""The MCP server over Streamable HTTP: what a tool call costs, against the same operation on
the REST API, both under one uvicorn process (`config.asgi:application`, as `serve.sh sse` runs it).

Clients are the SDK's own (`ClientSession` over `streamable_http_client`), in this process; each
client keeps one session open and calls one tool again and again. They share the 2 cores with
uvicorn and PostgreSQL.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from casebank.access import services as access_services
from casebank.cases import services as case_services
from tests.bench.support import percentile, redis_server, server

NAME = "mcp"
TITLE = "MCP server: tool calls over Streamable HTTP vs the REST API, one uvicorn process"
CASES = 200
CALLS = 60  # per client
CLIENTS = (1, 8)
TOPICS = ["revenue", "churn", "latency", "refund", "invoice", "forecast", "inventory", "support", "fraud", "pricing"]


def _seed() -> list[str]:
    ids = []
    for n in range(CASES):
        topic = TOPICS[n % len(TOPICS)]
        case = case_services.case_create(
            title=f"{topic.title()} report {n}", query=f"Show the {topic} by region for period {n}",
            plan=[{"agent": "data_analysis", "action": f"SQL over {topic}"}], actor="bench",
        )
        ids.append(str(case.pk))
    return ids


def _arguments(tool: str, n: int, case_ids: list[str]) -> dict[str, Any]:
    if tool == "search_cases":
        return {"query": f"{TOPICS[n % len(TOPICS)]} by region for period {n % 50}", "k": 4}
    if tool == "get_case_plan":
        return {"case_id": case_ids[n % len(case_ids)]}
    return {"case_id": case_ids[n % len(case_ids)], "success": n % 3 != 0, "duration_ms": 100 + n,
            "run_id": str(uuid.uuid4())}


async def _mcp_client(url: str, key: str, tool: str, case_ids: list[str], latencies: list[float], offset: int) -> None:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for n in range(CALLS):
            started = time.perf_counter()
            result = await session.call_tool(tool, _arguments(tool, offset + n, case_ids))
            latencies.append(time.perf_counter() - started)
            assert not result.is_error, result.content


async def _rest_client(base: str, key: str, tool: str, case_ids: list[str], latencies: list[float], offset: int) -> None:
    async with httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Token {key}"}, timeout=60) as http:
        for n in range(CALLS):
            arguments = _arguments(tool, offset + n, case_ids)
            started = time.perf_counter()
            if tool == "search_cases":
                response = await http.post("/api/cases/search/", json=arguments)
            elif tool == "get_case_plan":
                response = await http.get(f"/api/cases/{arguments['case_id']}/")
            else:
                response = await http.post("/api/logs/", json={
                    "id": arguments["run_id"], "case_id": arguments["case_id"], "success": arguments["success"],
                    "execution_time_ms": arguments["duration_ms"]})
            latencies.append(time.perf_counter() - started)
            assert response.status_code < 300, response.text


def _wave(client: Any, target: str, key: str, tool: str, case_ids: list[str], clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for c in range(clients):
                group.start_soon(client, target, key, tool, case_ids, latencies, c * CALLS)

    started = time.perf_counter()
    anyio.run(main)
    return time.perf_counter() - started, latencies


def run(context: dict) -> str:
    case_ids = _seed()
    _, key = access_services.api_key_create(name="bench-mcp", tier="premium")
    rows = []
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per request otherwise
    # Production's Redis (cache, throttle counters, the queue that counts case uses), and a rate far
    # above the figures measured here: the benchmark measures the server, not the throttle.
    with redis_server() as redis_url, server(kind="uvicorn", workers=1, extra_env={
            "REDIS_URL": redis_url, "API_RATE_PREMIUM": "1000000/min"}) as (base, _):
        for tool, rest in (("search_cases", "POST /api/cases/search/"), ("get_case_plan", "GET /api/cases/{id}/"),
                           ("log_run", "POST /api/logs/ (one log)")):
            for clients in CLIENTS:
                for label, client, target in (("MCP " + tool, _mcp_client, f"{base}/mcp"), (rest, _rest_client, base)):
                    _wave(client, target, key, tool, case_ids, 1)  # warm-up: model, caches, connections
                    seconds, latencies = _wave(client, target, key, tool, case_ids, clients)
                    ms = [value * 1000 for value in latencies]
                    rows.append(f"| {label} | {clients} | {len(ms)} | {len(ms) / seconds:.0f} | "
                                f"{percentile(ms, 0.5):.1f} / {percentile(ms, 0.95):.1f} / {percentile(ms, 0.99):.1f} ms |")
    return "\n".join([
        f"{CASES} cases; each client keeps one connection (MCP: one initialised session) and makes {CALLS} calls; "
        "uvicorn, 1 worker, `DATABASE_CONN_MAX_AGE=0` as `serve.sh sse` runs it, Redis for cache and queue; "
        "clients in the benchmark process. Searches repeat 50 distinct queries, so most are answered by the read cache. "
        "The REST rows are the same operations on the same server, for the protocol's overhead; "
        "`get_case_plan` also counts a use of the case through the task queue (an enqueue per call), which "
        "`GET /api/cases/{id}/` does not.",
        "",
        "| operation | clients | calls | calls/s | latency p50 / p95 / p99 |",
        "|---|---|---|---|---|",
        *rows,
    ])
