"""Which spans are runs and what their logs hold (docs/otlp.md), through POST /v1/traces."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from reflection.models import ExecutionLog
from tests.reflection.otlp.spans import agent_run, export, span

pytestmark = pytest.mark.django_db


def _send(api, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    response = api.post("/v1/traces", data=request.SerializeToString(), content_type="application/x-protobuf")
    assert response.status_code == 200, response.content
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    return answer


def _log(root: Span) -> ExecutionLog:
    return ExecutionLog.objects.get(context__otlp__span_id=root.span_id.hex())


def _chat(trace_id: bytes, parent: Span, tokens: tuple[int, int], model: str = "gpt-4o-mini", **attrs) -> Span:
    return span(
        trace_id, parent=parent.span_id, name=f"chat {model}",
        attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
               "gen_ai.usage.input_tokens": tokens[0], "gen_ai.usage.output_tokens": tokens[1], **attrs},
    )


def test_a_root_span_is_a_run_with_the_tokens_of_the_llm_calls_below_it(api, make_case):
    case = make_case()
    trace = os.urandom(16)
    root = span(trace, name="handle request", attrs={"caseloop.case.id": str(case.id)}, duration_ms=1234.4)
    tool = span(trace, parent=root.span_id, name="execute_tool run_sql")
    deep = _chat(trace, tool, (300, 40))
    first = _chat(trace, root, (100, 10), model="gpt-4o")
    answer = _send(api, export(root, tool, deep, first))
    assert not answer.HasField("partial_success")
    log = _log(root)
    assert (log.success, log.tokens_in, log.tokens_out, log.execution_time_ms) == (True, 400, 50, 1234)
    assert log.model == "gpt-4o-mini"  # the model that used most tokens
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert log.created_at == epoch + timedelta(microseconds=root.start_time_unix_nano // 1_000)


def test_a_nested_agent_is_its_own_run_and_no_token_is_counted_twice(api, make_case):
    case = make_case()
    trace = os.urandom(16)
    root = span(trace, name="workflow", attrs={"caseloop.case.id": str(case.id)})
    orchestrator_call = _chat(trace, root, (50, 5))
    child = span(trace, parent=root.span_id, name="invoke_agent researcher",
                 attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"})
    child_call = _chat(trace, child, (700, 70), model="claude-sonnet")
    _send(api, export(root, orchestrator_call, child, child_call))
    outer, inner = _log(root), _log(child)
    assert (outer.tokens_in, outer.tokens_out, outer.model) == (50, 5, "gpt-4o-mini")
    assert (inner.tokens_in, inner.tokens_out, inner.model) == (700, 70, "claude-sonnet")
    assert inner.context["otlp"]["agent"] == "researcher"
    assert inner.case_id is None  # the case is on the outer span only


def test_usage_on_the_run_span_is_its_total_and_children_are_not_added(api):
    trace = os.urandom(16)
    run = span(trace, name="agent run", attrs={"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                                               "gen_ai.usage.cost": 0.25, "gen_ai.request.model": "gpt-4.1"})
    calls = [_chat(trace, run, (500, 50), **{"gen_ai.usage.cost": 0.1}) for _ in range(2)]
    _send(api, export(run, *calls))
    log = _log(run)
    assert (log.tokens_in, log.tokens_out, log.cost_usd, log.model) == (1000, 100, 0.25, "gpt-4.1")


def test_the_peers_attribute_names_are_read(api):
    """OpenInference (Phoenix) and the older GenAI names (OpenLLMetry)."""
    trace = os.urandom(16)
    agent = span(trace, parent=os.urandom(8), name="Agent", attrs={"openinference.span.kind": "AGENT", "agent.name": "triage"})
    llm = span(trace, parent=agent.span_id, name="ChatOpenAI",
               attrs={"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.token_count.prompt": 11,
                      "llm.token_count.completion": 7, "llm.cost.total": 0.002})
    legacy = span(trace, parent=agent.span_id, name="openai.chat",
                  attrs={"gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 5,
                         "gen_ai.usage.completion_tokens": 3, "gen_ai.usage.cost": 0.001})
    _send(api, export(agent, llm, legacy))
    log = _log(agent)
    assert (log.tokens_in, log.tokens_out, log.model) == (16, 10, "gpt-4o")
    assert log.cost_usd == pytest.approx(0.003)
    assert log.context["otlp"]["agent"] == "triage"


def test_spans_below_a_run_in_another_request_are_not_runs_and_not_refused(api):
    trace = os.urandom(16)
    orphan_parent = span(trace, parent=os.urandom(8), name="step")
    orphan_call = _chat(trace, orphan_parent, (10, 1))
    answer = _send(api, export(orphan_parent, orphan_call))
    assert not answer.HasField("partial_success")
    assert ExecutionLog.objects.count() == 0


def test_a_failure_takes_its_type_and_message_from_the_exception_event(api):
    trace = os.urandom(16)
    run = span(trace, name="run", error="")
    event = run.events.add(name="exception", time_unix_nano=run.end_time_unix_nano)
    for key, text in (("exception.type", "sqlite3.OperationalError"), ("exception.message", "no such table: orders")):
        event.attributes.add(key=key).value.string_value = text
    ok = span(trace, name="other root")
    ok.events.add(name="exception").attributes.add(key="exception.type").value.string_value = "Handled"
    _send(api, export(run, ok))
    failed = _log(run)
    assert (failed.success, failed.error_type, failed.error_message) == (False, "sqlite3.OperationalError", "no such table: orders")
    assert failed.error_template  # grouped like any failure of POST /api/logs/
    assert (_log(ok).success, _log(ok).error_type) == (True, "")


def test_the_case_comes_from_the_resource_or_the_agent_name(api, make_case, settings):
    first, second, third = make_case(title="one"), make_case(title="two"), make_case(title="three")
    settings.OTLP_AGENT_CASES = {"sql-agent": str(second.id), "reporter": str(third.id), "broken": "nope"}
    from_resource = agent_run(None)
    _send(api, export(*from_resource, resource={"caseloop.case.id": str(first.id), "caseloop.case.version": 1}))
    by_agent = agent_run(None)
    by_service = agent_run(None, attrs={"gen_ai.agent.name": "unmapped"})
    by_service_name = span(os.urandom(16), name="root")
    _send(api, export(*by_agent, resource={"service.name": "ignored"}))
    _send(api, export(by_service_name, resource={"service.name": "reporter"}))
    _send(api, export(*by_service))
    assert (_log(from_resource[0]).case_id, _log(from_resource[0]).case_version) == (first.id, 1)
    assert _log(by_agent[0]).case_id == second.id
    assert _log(by_service_name).case_id == third.id
    assert _log(by_service[0]).case_id is None
    broken = agent_run(None, attrs={"gen_ai.agent.name": "broken"})
    answer = _send(api, export(*broken))
    assert "OTLP_AGENT_CASES maps 'broken'" in answer.partial_success.error_message


def test_a_session_id_and_odd_strings_are_kept_safely(api):
    trace = os.urandom(16)
    session = "9b2e3c4d-0000-4000-8000-000000000001"
    run = span(trace, name="run\x00" + "x" * 500, error="boom\x00" + "y" * 20_000,
               attrs={"caseloop.session.id": session, "error.type": "E" * 300, "gen_ai.request.model": "m" * 300})
    _send(api, export(run))
    log = _log(run)
    assert str(log.session_id) == session
    assert (len(log.error_type), len(log.model), len(log.error_message)) == (100, 100, 10_000)
    assert "\x00" not in log.error_message and log.context["otlp"]["span"].startswith("runxx")


def test_the_same_span_twice_in_one_request_is_one_run_and_a_cycle_of_parents_is_harmless(api):
    trace = os.urandom(16)
    run = span(trace, name="run")
    a, b = os.urandom(8), os.urandom(8)
    loop_a = span(trace, span_id=a, parent=b, name="a", attrs={"gen_ai.usage.input_tokens": 5})
    loop_b = span(trace, span_id=b, parent=a, name="b")
    answer = _send(api, export(run, run, loop_a, loop_b))
    assert not answer.HasField("partial_success")
    assert ExecutionLog.objects.count() == 1


def test_a_deep_chain_of_spans_is_walked_without_recursion(api):
    trace = os.urandom(16)
    chain = [span(trace, name="root")]
    for _ in range(5_000):
        chain.append(span(trace, parent=chain[-1].span_id, name="step"))
    chain.append(_chat(trace, chain[-1], (9, 1)))
    _send(api, export(*reversed(chain)))
    assert _log(chain[0]).tokens_in == 9


def test_log_ids_are_derived_from_trace_and_span_ids(api):
    first = span(os.urandom(16), name="run")
    _send(api, export(first))
    log = _log(first)
    assert log.id.version == 7
    assert int(log.id.hex[:12], 16) == first.start_time_unix_nano // 1_000_000  # time-ordered, like uuid7
    again = ExportTraceServiceRequest()
    again.CopyFrom(export(first))
    _send(api, again)
    assert ExecutionLog.objects.get().id == log.id


def test_a_bad_usage_value_below_a_span_that_reports_usage_is_ignored(api):
    trace = os.urandom(16)
    run = span(trace, name="agent run", attrs={"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2})
    odd = _chat(trace, run, (5, 1), **{"gen_ai.usage.cost": -3.0})
    answer = _send(api, export(run, odd))
    assert not answer.HasField("partial_success")
    assert (_log(run).tokens_in, _log(run).cost_usd) == (10, 0.0)
