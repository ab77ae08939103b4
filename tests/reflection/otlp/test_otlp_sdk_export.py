"""The real OpenTelemetry SDK, exporting over OTLP/HTTP to a live server: an agent instrumented
with opentelemetry-instrumentation-openai-v2 calls the scripted OpenAI-compatible server
through the `openai` SDK, and its runs end up as execution logs."""
from __future__ import annotations

import base64
import gzip
import http.client
import threading
from collections.abc import Iterator
from urllib.parse import urlparse

import openai
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from casebank.access import services as access_services
from reflection.models import ExecutionLog
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key(transactional_db) -> str:
    return access_services.api_key_create(name="otel-agent")[1]


@pytest.fixture
def captured(openai_server) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider with the OpenAI instrumentation on; finished spans are kept in memory,
    and each test exports them with the real OTLP exporter."""
    provider = TracerProvider(resource=Resource.create({"service.name": "sql-agent"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, memory
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def _run_agent(provider: TracerProvider, openai_server, *, case_id: str, fail: bool = False) -> None:
    """A small agent: one invoke_agent span around two chat completions (and a failure on demand)."""
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    tracer = provider.get_tracer("sql-agent")
    openai_server.reply(Reply.text("SELECT 1", prompt_tokens=120, completion_tokens=30),
                        Reply.text("done", prompt_tokens=80, completion_tokens=20))
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "sql-agent", "caseloop.case.id": case_id}
    try:
        with tracer.start_as_current_span("invoke_agent sql-agent", attributes=attributes):
            for question in ("Write the SQL", "Check it"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
            if fail:
                raise TimeoutError("SQL query exceeded 5000 ms")
    except TimeoutError:
        pass


def _exporter(live_server, key: str, **kwargs) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{live_server.url}/v1/traces", headers={"Authorization": f"Token {key}"}, **kwargs)


def _by_span(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {f"{span.context.span_id:016x}": span for span in spans}


def test_it_stores_each_agent_run_with_its_outcome_tokens_model_duration_and_case(
    live_server, key, captured, openai_server, make_case
):
    provider, memory = captured
    case = make_case()
    _run_agent(provider, openai_server, case_id=str(case.id))
    _run_agent(provider, openai_server, case_id=str(case.id), fail=True)
    spans = memory.get_finished_spans()
    assert len(spans) == 6  # two runs of one agent span and two chat spans each

    assert _exporter(live_server, key).export(spans) == SpanExportResult.SUCCESS

    logs = list(ExecutionLog.objects.order_by("created_at"))
    assert len(logs) == 2
    by_span = _by_span(spans)
    for log, success in zip(logs, (True, False), strict=True):
        span = by_span[log.context["otlp"]["span_id"]]
        assert span.name == "invoke_agent sql-agent"
        assert (log.case_id, log.case_version, log.success) == (case.id, 1, success)
        assert (log.tokens_in, log.tokens_out) == (200, 50)  # summed over its two chat spans
        assert log.model == "gpt-4o-mini"
        assert log.execution_time_ms == round((span.end_time - span.start_time) / 1_000_000)
        assert log.context["otlp"]["trace_id"] == f"{span.context.trace_id:032x}"
    failed = logs[1]
    assert failed.error_type == "TimeoutError"
    assert failed.error_message == "TimeoutError: SQL query exceeded 5000 ms"  # the SDK's status message


def test_a_re_export_of_the_same_spans_stores_nothing_twice(live_server, key, captured, openai_server, make_case):
    provider, memory = captured
    case = make_case()
    _run_agent(provider, openai_server, case_id=str(case.id))
    spans = memory.get_finished_spans()
    exporter = _exporter(live_server, key)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    first = list(ExecutionLog.objects.values_list("id", flat=True))
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert _exporter(live_server, key, compression=Compression.Gzip).export(spans) == SpanExportResult.SUCCESS
    assert list(ExecutionLog.objects.values_list("id", flat=True)) == first and len(first) == 1


def test_it_takes_gzip_and_a_bearer_key(live_server, key, captured, openai_server, make_case):
    provider, memory = captured
    case = make_case()
    _run_agent(provider, openai_server, case_id=str(case.id))
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces", headers={"Authorization": f"Bearer {key}"}, compression=Compression.Gzip
    )
    assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    assert ExecutionLog.objects.get().tokens_in == 200


def _otlp_json(spans: tuple[ReadableSpan, ...]) -> dict:
    """The spans as OTLP/JSON: the protobuf mapping, with ids in hex as the OTLP spec wants."""
    body = json_format.MessageToDict(encode_spans(spans))
    for resource in body["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    if field in span:
                        span[field] = base64.b64decode(span[field]).hex()
    return body


def _post(live_server, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    target = urlparse(live_server.url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    connection.request("POST", "/v1/traces", body, headers)
    response = connection.getresponse()
    status, payload = response.status, response.read()
    connection.close()
    return status, orjson.loads(payload)


def test_it_takes_otlp_json_with_hex_ids_plain_and_gzipped(live_server, key, captured, openai_server, make_case):
    provider, memory = captured
    case = make_case()
    _run_agent(provider, openai_server, case_id=str(case.id), fail=True)
    spans = memory.get_finished_spans()
    body = orjson.dumps(_otlp_json(spans))
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}

    assert _post(live_server, body, headers) == (200, {})
    log = ExecutionLog.objects.get()
    agent_span = next(span for span in spans if span.name.startswith("invoke_agent"))
    assert log.id == ExecutionLog.objects.get().id and not log.success
    assert (log.tokens_in, log.tokens_out, log.model) == (200, 50, "gpt-4o-mini")
    assert log.context["otlp"]["span_id"] == f"{agent_span.context.span_id:016x}"

    # The same spans again, gzipped: the same run, stored once.
    assert _post(live_server, gzip.compress(body), {**headers, "Content-Encoding": "gzip"}) == (200, {})
    assert ExecutionLog.objects.count() == 1


def test_a_run_of_an_unknown_case_is_refused_by_partial_success(live_server, key, captured, openai_server, make_case):
    provider, memory = captured
    case = make_case()
    _run_agent(provider, openai_server, case_id=str(case.id))
    _run_agent(provider, openai_server, case_id="00000000-0000-4000-8000-00000000dead")
    spans = memory.get_finished_spans()
    status, answer = _post(
        live_server, orjson.dumps(_otlp_json(spans)),
        {"Authorization": f"Token {key}", "Content-Type": "application/json"},
    )
    assert status == 200
    assert answer["partialSuccess"]["rejectedSpans"] == "3"  # the run span and its two chat spans
    assert "No case with id 00000000-0000-4000-8000-00000000dead" in answer["partialSuccess"]["errorMessage"]
    assert ExecutionLog.objects.get().case_id == case.id


def test_a_span_with_an_error_status_fails_its_run_even_without_an_exception(live_server, key, make_case):
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    case = make_case()
    with provider.get_tracer("agent").start_as_current_span("run", attributes={"caseloop.case.id": str(case.id)}) as span:
        span.set_attribute("error.type", "RetrievalEmpty")
        span.set_status(StatusCode.ERROR, "no rows matched")
    assert _exporter(live_server, key).export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    log = ExecutionLog.objects.get()
    assert (log.success, log.error_type, log.error_message) == (False, "RetrievalEmpty", "no rows matched")
    provider.shutdown()


@pytest.mark.postgres(reason="concurrent writers: SQLite serialises them anyway")
def test_the_same_export_sent_many_times_at_once_stores_each_run_once(live_server, key, captured, openai_server, make_case):
    provider, memory = captured
    case = make_case()
    for _ in range(3):
        _run_agent(provider, openai_server, case_id=str(case.id))
    spans = memory.get_finished_spans()
    results: list[SpanExportResult] = []

    def send() -> None:
        results.append(_exporter(live_server, key).export(spans))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [SpanExportResult.SUCCESS] * 6
    assert ExecutionLog.objects.count() == 3
