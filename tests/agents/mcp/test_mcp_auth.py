"""Every request to /mcp needs an active key (401 JSON otherwise); every tool needs its scope
(an MCP tool error naming it otherwise)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from casebank.access import services as access_services
from casebank.models import ApiKey
from reflection.models import ExecutionLog
from tests.agents.mcp.conftest import call, error_text, with_session

pytestmark = pytest.mark.django_db(transaction=True)

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    """(status, headers (case-insensitive), body) of a raw POST."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-key", "Token cl_revoked", "Basic dXNlcjpwdw=="])
def test_it_answers_401_json_without_a_valid_key(mcp_url, header):
    status, headers, body = post(mcp_url, json.dumps(INITIALIZE).encode(), {"Authorization": header} if header else {})
    assert status == 401
    refusal = json.loads(body)
    assert refusal["detail"] and refusal["errors"] == {} and headers["WWW-Authenticate"] == "Bearer"
    assert refusal["error"]["message"] == refusal["detail"]  # the JSON-RPC envelope MCP clients read


def test_the_sdk_client_is_refused_without_a_key(mcp_url):
    with pytest.raises(Exception) as refused:
        with_session(mcp_url, None, lambda session: session.list_tools())
    assert "Authentication credentials were not provided" in repr(refused.value)


def test_a_revoked_key_stops_working_at_once(mcp_url, make_key):
    plain = make_key()
    assert not call(mcp_url, plain, "search_cases", {"query": "revenue"}).is_error
    access_services.api_key_revoke(api_key=ApiKey.objects.get())
    status, _, _ = post(mcp_url, json.dumps(INITIALIZE).encode(), {"Authorization": f"Bearer {plain}"})
    assert status == 401


def test_it_accepts_the_token_scheme_of_the_rest_api_too(mcp_url, make_key):
    tools = with_session(mcp_url, make_key(), lambda session: session.list_tools(), scheme="Token")
    assert len(tools.tools) == 4


def test_guessing_keys_is_throttled_per_address(mcp_url, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}),
                                                          "failed_auth": "3/min"}}
    statuses = [post(mcp_url, b"{}", {"Authorization": f"Bearer guess-{n}"})[0] for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.parametrize(("tool", "arguments", "scope"), [
    ("search_cases", {"query": "revenue"}, "cases:read"),
    ("get_case_plan", {"case_id": "00000000-0000-4000-8000-000000000001"}, "cases:read"),
    ("log_run", {"case_id": "00000000-0000-4000-8000-000000000001", "success": True, "duration_ms": 1}, "logs:write"),
    ("get_case_analysis", {"case_id": "00000000-0000-4000-8000-000000000001"}, "reflection"),
])
def test_a_tool_without_its_scope_is_a_tool_error_naming_the_scope(mcp_url, make_key, tool, arguments, scope):
    others = [s for s in ("cases:read", "logs:write", "reflection", "sessions") if s != scope]
    result = call(mcp_url, make_key(scopes=others), tool, arguments)
    assert f"lacks the scope '{scope}'" in error_text(result)
    assert not ExecutionLog.objects.exists()


def test_default_keys_read_cases_and_log_runs_but_not_analyses(mcp_url, make_key, make_case):
    case, key = make_case(), make_key()
    assert not call(mcp_url, key, "get_case_plan", {"case_id": str(case.pk)}).is_error
    assert not call(mcp_url, key, "log_run", {"case_id": str(case.pk), "success": True, "duration_ms": 5}).is_error
    assert "reflection" in error_text(call(mcp_url, key, "get_case_analysis", {"case_id": str(case.pk)}))


def test_a_host_outside_allowed_hosts_is_refused_even_with_a_key(mcp_url, make_key):
    status, _, body = post(mcp_url, json.dumps(INITIALIZE).encode(),
                           {"Authorization": f"Bearer {make_key()}", "Host": "evil.example.com"})
    assert status == 400 and json.loads(body)["detail"] == "Invalid Host header."
