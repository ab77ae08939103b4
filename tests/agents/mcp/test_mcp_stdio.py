"""`manage.py mcp_stdio` driven by the SDK's stdio client, as a desktop MCP client runs it: its own
process on its own database (a SQLite file, or a fresh PostgreSQL database)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.agents.sessions.test_session_stream import ROOT, _manage, standalone_database

CREATE_CASE = (
    "from casebank.cases.services import case_create; "
    "print(case_create(title='Monthly revenue by region', query='Show monthly revenue by region', "
    "plan=[{'agent': 'data_analysis', 'action': 'SQL by month and region'}], actor='test').pk)"
)


def test_the_stdio_server_serves_the_tools_with_the_key_from_the_environment(tmp_path: Path, migrated_template):
    with standalone_database(tmp_path, migrated_template) as url:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING"}
        key = _manage(env, "create_api_key", "desktop").strip().split()[-1]
        case_id = _manage(env, "shell", "-c", CREATE_CASE).strip().splitlines()[-1]
        server = StdioServerParameters(
            command=sys.executable, args=["manage.py", "mcp_stdio"], cwd=str(ROOT),
            env={name: env[name] for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "LOG_LEVEL", "SHARED_CACHE_DIR")
                 if name in env} | {"CASELOOP_API_KEY": key},
        )

        async def main() -> tuple:
            with open(tmp_path / "stderr.log", "w") as errlog:
                async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    plan = await session.call_tool("get_case_plan", {"case_id": case_id})
                    found = await session.call_tool("search_cases", {"query": "revenue by region", "k": 2})
                    logged = await session.call_tool("log_run", {"case_id": case_id, "success": True, "duration_ms": 42})
                    refused = await session.call_tool("get_case_analysis", {"case_id": case_id})
                    bad = await session.call_tool("search_cases", {"query": "revenue", "k": 10**9})
                    return tools, plan, found, logged, refused, bad

        tools, plan, found, logged, refused, bad = anyio.run(main)
        assert {tool.name for tool in tools.tools} == {"search_cases", "get_case_plan", "log_run", "get_case_analysis"}
        assert plan.structured_content["version"] == 1
        assert plan.structured_content["steps"] == [{"agent": "data_analysis", "action": "SQL by month and region"}]
        assert [case["id"] for case in found.structured_content["examples"]] == [case_id]
        assert logged.structured_content["stored"] is True
        assert refused.is_error and "lacks the scope 'reflection'" in refused.content[0].text  # a default key
        assert bad.is_error and "less than or equal to 20" in bad.content[0].text
        stored = _manage(env, "shell", "-c", "from reflection.models import ExecutionLog; "
                                             "print(list(ExecutionLog.objects.values_list('execution_time_ms', flat=True)))")
        assert stored.strip().splitlines()[-1] == "[42]"


@pytest.mark.parametrize(("arguments", "extra", "message"), [
    ([], {}, "Give an API key"),
    (["--key", "cl_not-a-key"], {}, "Invalid or revoked API key"),
    ([], {"CASELOOP_API_KEY": "cl_not-a-key"}, "Invalid or revoked API key"),
])
def test_it_refuses_to_start_without_a_valid_key(tmp_path: Path, arguments, extra, message, migrated_template):
    env = {name: value for name, value in os.environ.items() if name != "CASELOOP_API_KEY"}
    with standalone_database(tmp_path, migrated_template) as migrated:
        # A key to look up needs the tables; with no key at all, an empty database.
        url = migrated if arguments or extra else f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        env |= {"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", **extra}
        result = subprocess.run([sys.executable, "manage.py", "mcp_stdio", *arguments], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode != 0 and message in result.stderr and result.stdout == ""
