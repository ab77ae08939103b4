"""The MCP server: four tools over the case bank and the execution log.

Arguments are typed and bounded (pydantic validates them before a tool runs; a bad argument is
a tool error naming the field), unknown arguments are refused, and every call checks the
caller's key and its scope first. The same server definition serves Streamable HTTP (the key
comes with each request) and stdio (one key for the process), through `caller`.
"""
from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field, StrictBool, StrictInt

from agents.mcp import selectors, services
from agents.mcp.auth import ScopeMissing, require_scope
from agents.mcp.outputs import CaseAnalysisResult, CasePlan, CaseSearchResult, LoggedRun
from agents.mcp.threads import off_loop
from casebank.access.scopes import Scope
from casebank.models import ApiKey
from core.errors import DomainError
from reflection.logs.limits import MAX_ERROR_MESSAGE, MAX_EXECUTION_TIME_MS, MAX_INT_COLUMN, MAX_TEXT

T = TypeVar("T")
# How the server learns the calling key: from the HTTP request, or the stdio process's key.
CallerLookup = Callable[[Context], Awaitable[ApiKey]]

MAX_QUERY = 2_000  # as the REST search
MAX_K = 20
CaseId = Annotated[UUID, Field(description="A case's id (a UUID), as search_cases returns it.")]

INSTRUCTIONS = (
    "Caseloop is a bank of plans that worked. Before a task, call search_cases: follow the examples, "
    "avoid what the warnings did. Take a case's plan with get_case_plan, run it, then report the outcome "
    "with log_run (with the version get_case_plan returned), so reflection learns from it."
)


def build_server(*, caller: CallerLookup) -> MCPServer:
    server: MCPServer = MCPServer("caseloop", instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    async def run(ctx: Context, scope: str, fn: Callable[..., T], **kwargs: Any) -> T:
        _refuse_unknown_arguments(ctx)
        try:
            api_key = await caller(ctx)
            require_scope(api_key, scope)
            if "api_key" in inspect.signature(fn).parameters:
                kwargs["api_key"] = api_key
            return await off_loop(fn, **kwargs)
        except (DomainError, ScopeMissing) as error:
            raise ToolError(str(error)) from None

    @server.tool(annotations=read_only)
    async def search_cases(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY, description="The task to find cases for.")],
        ctx: Context,
        k: Annotated[StrictInt, Field(ge=1, le=MAX_K, description="How many cases, 1..20.")] = 4,
    ) -> CaseSearchResult:
        """Find the cases most similar to a task, with their success rates: `examples` worked (plans to
        follow), `warnings` often failed (what to avoid). Needs the scope cases:read."""
        return await run(ctx, Scope.CASES_READ, selectors.cases_search, query=query, k=k)

    @server.tool(annotations=read_only)
    async def get_case_plan(case_id: CaseId, ctx: Context) -> CasePlan:
        """The plan of an approved case to run now: its version and steps. Needs the scope cases:read."""
        return await run(ctx, Scope.CASES_READ, selectors.case_plan, case_id=case_id)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    async def log_run(
        case_id: CaseId,
        success: Annotated[StrictBool, Field(description="Whether the run achieved its task.")],
        duration_ms: Annotated[float, Field(
            ge=0, le=MAX_EXECUTION_TIME_MS, allow_inf_nan=False, strict=True, description="How long the run took."
        )],
        ctx: Context,
        error_type: Annotated[str | None, Field(max_length=MAX_TEXT, description="e.g. TimeoutError")] = None,
        error_message: Annotated[str | None, Field(max_length=MAX_ERROR_MESSAGE)] = None,
        tokens_in: Annotated[StrictInt | None, Field(ge=0, le=MAX_INT_COLUMN)] = None,
        tokens_out: Annotated[StrictInt | None, Field(ge=0, le=MAX_INT_COLUMN)] = None,
        version: Annotated[StrictInt | None, Field(
            ge=1, le=MAX_INT_COLUMN, description="The plan version that ran (get_case_plan's); default the current one."
        )] = None,
        run_id: Annotated[UUID | None, Field(description="Your id for this run: re-sending it never stores it twice.")] = None,
    ) -> LoggedRun:
        """Report the outcome of running a case's plan; reflection analyses these runs. Needs the scope logs:write."""
        return await run(
            ctx, Scope.LOGS_WRITE, services.run_log, case_id=case_id, success=success, duration_ms=duration_ms,
            error_type=error_type, error_message=error_message, tokens_in=tokens_in, tokens_out=tokens_out,
            version=version, run_id=run_id,
        )

    @server.tool(annotations=read_only)
    async def get_case_analysis(
        case_id: CaseId,
        ctx: Context,
        history: Annotated[StrictInt, Field(ge=0, le=365, description="Earlier analyses to list, 0..365.")] = 10,
    ) -> CaseAnalysisResult:
        """The latest stored analysis of a case (success rates, common errors, latency, anomalies) and its
        trend. Needs the scope reflection."""
        return await run(ctx, Scope.REFLECTION, selectors.case_analysis, case_id=case_id, history=history)

    tools = (search_cases, get_case_plan, log_run, get_case_analysis)
    _ARGUMENTS.update({tool.__name__: _argument_names(tool) for tool in tools})
    return server


# Each tool's argument names; pydantic drops unknown ones silently, so a typo ("tokns_in") would lose data.
_ARGUMENTS: dict[str, frozenset[str]] = {}


def _argument_names(tool: Callable[..., Any]) -> frozenset[str]:
    return frozenset(name for name, parameter in inspect.signature(tool).parameters.items() if name != "ctx")


def _refuse_unknown_arguments(ctx: Context) -> None:
    params = ctx.request_context.params or {}
    arguments = params.get("arguments") or {}
    unknown = sorted(set(arguments) - _ARGUMENTS.get(str(params.get("name")), frozenset()))
    if unknown:
        allowed = ", ".join(sorted(_ARGUMENTS.get(str(params.get("name")), ())))
        raise ToolError(f"Unknown argument(s): {', '.join(name[:50] for name in unknown[:5])}. Allowed: {allowed}.")
