"""Attacks an outsider would try on /mcp: every one gets a clear tool error or a JSON 4xx, never a
crash, and nothing is stored."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from reflection.models import ExecutionLog
from tests.agents.mcp.conftest import call, error_text, with_session
from tests.agents.mcp.test_mcp_auth import post

pytestmark = pytest.mark.django_db(transaction=True)

MISSING = "00000000-0000-4000-8000-000000000000"


def tool_call(tool: str, arguments: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}}).encode()


@pytest.mark.parametrize(("tool", "arguments", "named"), [
    ("search_cases", {"query": "x" * 100_000}, "at most 2000 characters"),
    ("search_cases", {"query": ""}, "at least 1 character"),
    ("search_cases", {"query": "revenue", "k": 10**9}, "less than or equal to 20"),
    ("search_cases", {"query": "revenue", "k": 0}, "greater than or equal to 1"),
    ("search_cases", {"query": "revenue", "k": 10**40}, "less than or equal to 20"),
    ("search_cases", {"query": 5}, "valid string"),
    ("search_cases", {"query": "revenue", "k": "4"}, "valid integer"),
    ("search_cases", {"query": "revenue", "k": True}, "valid integer"),
    ("search_cases", {"query": "revenue", "k": 2.5}, "valid integer"),
    ("search_cases", {"query": ["revenue"]}, "valid string"),
    ("search_cases", {}, "Field required"),
    ("search_cases", {"query": "revenue", "filters": {"a": 1}}, "Unknown argument(s): filters"),
    ("get_case_plan", {"case_id": "not-a-uuid"}, "valid UUID"),
    ("get_case_plan", {"case_id": MISSING}, f"No case with id {MISSING}"),
    ("get_case_analysis", {"case_id": MISSING}, f"No case with id {MISSING}"),
    ("get_case_analysis", {"case_id": MISSING, "history": 10**6}, "less than or equal to 365"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": 5}, f"No case with id {MISSING}"),
    ("log_run", {"case_id": MISSING, "success": "yes", "duration_ms": 5}, "valid boolean"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": "5"}, "valid number"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": -1}, "greater than or equal to 0"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": 1e300}, "less than or equal to 86400000"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": 5, "tokens_in": 2**40}, "less than or equal to"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": 5, "error_message": "e" * 20_000},
     "at most 10000 characters"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": 5, "error_message": "a\x00b"}, "NUL"),
    ("log_run", {"case_id": MISSING, "success": True, "duration_ms": 5, "tokns_in": 5}, "Unknown argument(s): tokns_in"),
])
def test_bad_arguments_are_tool_errors_naming_the_problem(mcp_url, make_key, tool, arguments, named):
    result = call(mcp_url, make_key(scopes=["cases:read", "logs:write", "reflection"]), tool, arguments)
    assert named in error_text(result)
    assert not ExecutionLog.objects.exists()


def nested(levels: int) -> object:
    deep: object = "revenue"
    for _ in range(levels):
        deep = {"a": [deep]}
    return deep


def test_deeply_nested_arguments_are_refused(mcp_url, make_key):
    key = make_key()
    assert "valid string" in error_text(call(mcp_url, key, "search_cases", {"query": nested(20)}))
    # Deeper than the server's JSON parser follows: a JSON-RPC parse error, which the SDK raises.
    with pytest.raises(Exception) as refused:
        call(mcp_url, key, "search_cases", {"query": nested(100)})
    assert "recursion limit exceeded" in repr(refused.value)


def test_non_finite_numbers_are_tool_errors(mcp_url, make_key):
    body = tool_call("log_run", {"case_id": MISSING, "success": True, "duration_ms": 5}).replace(b"5}", b"NaN}")
    status, _, answer = post(mcp_url, body, {"Authorization": f"Bearer {make_key()}"})
    result = json.loads(answer)["result"]
    assert status == 200 and result["isError"] and "finite number" in result["content"][0]["text"]


@pytest.mark.parametrize("body", [
    # Nesting past what the JSON parser follows, not JSON at all, not a JSON-RPC message.
    b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_cases", "arguments": {"query": '
    + b"[" * 100_000 + b"]" * 100_000 + b"}}}",
    b"\xff\xfe not json",
    b"[]",
    b"",
])
def test_malformed_bodies_get_a_json_4xx(mcp_url, make_key, body):
    status, headers, answer = post(mcp_url, body, {"Authorization": f"Bearer {make_key()}"})
    assert 400 <= status < 500, (status, answer[:300])
    assert headers["Content-Type"].startswith("application/json") and json.loads(answer)
    assert not ExecutionLog.objects.exists()


def test_a_huge_body_is_refused_before_it_is_read_whole(mcp_url, make_key):
    status, headers, answer = post(mcp_url, tool_call("search_cases", {"query": "x" * 2_000_000}),
                                   {"Authorization": f"Bearer {make_key()}"})
    assert status == 413 and "too large" in json.loads(answer)["detail"]


def at_once(url: str, calls: list[tuple[str, str, dict]]) -> list[object]:
    """Each (key, tool, arguments) in its own client session, all at the same time; the results in order."""
    results: list[object] = [None] * len(calls)

    async def one(index: int, key: str, tool: str, arguments: dict) -> None:
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as http, \
                streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(tool, arguments)
            results[index] = result.structured_content if not result.is_error else error_text(result)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for index, (key, tool, arguments) in enumerate(calls):
                group.start_soon(one, index, key, tool, arguments)

    anyio.run(main)
    return results


def test_many_clients_searching_at_once_each_get_their_own_answer(mcp_url, make_key, make_case):
    revenue, password = make_case(), make_case(title="Reset a password", query="How do I reset a customer password")
    keys = [make_key() for _ in range(4)]
    for key in keys:  # first use records last_used_at (a write); the wave below then only reads
        call(mcp_url, key, "search_cases", {"query": "warm up"})
    queries = ["monthly revenue by region", "reset a customer password"]
    results = at_once(mcp_url, [(keys[n % 4], "search_cases", {"query": queries[n % 2], "k": 1}) for n in range(16)])
    for n, found in enumerate(results):
        assert isinstance(found, dict), found
        assert found["examples"][0]["id"] == str((revenue, password)[n % 2].pk)


def test_many_clients_logging_at_once_each_store_their_run(mcp_url, make_key, make_case):
    case = make_case()
    keys = [make_key() for _ in range(8)]
    calls = [(keys[n % 8], "log_run", {"case_id": str(case.pk), "success": n % 2 == 0, "duration_ms": n,
                                       "run_id": str(uuid.UUID(int=n + 1))}) for n in range(24)]
    results = at_once(mcp_url, calls)
    assert results == [{"run_id": str(uuid.UUID(int=n + 1)), "case_id": str(case.pk), "case_version": 1, "stored": True}
                       for n in range(24)]
    assert sorted(ExecutionLog.objects.values_list("execution_time_ms", flat=True)) == list(range(24))


def test_a_session_of_many_calls_keeps_working(mcp_url, make_key, make_case):
    case = make_case()

    async def many(session: ClientSession) -> list[bool]:
        return [(await session.call_tool("get_case_plan", {"case_id": str(case.pk)})).is_error for _ in range(10)]

    assert with_session(mcp_url, make_key(), many) == [False] * 10


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH"])
def test_other_methods_get_a_json_405_at_once(mcp_url, make_key, method):
    """Stateless: a GET would open a stream that never ends, and there is no session to DELETE."""
    request = urllib.request.Request(mcp_url, method=method, headers={
        "Authorization": f"Bearer {make_key()}", "Accept": "application/json, text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == "POST"
    assert "POST" in json.loads(refused.value.read())["detail"]
