"""Export requests built from the official messages, span by span, for the tests and the benchmark."""
from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def value(item: Any) -> AnyValue:
    if isinstance(item, bool):
        return AnyValue(bool_value=item)
    if isinstance(item, int):
        return AnyValue(int_value=item)
    if isinstance(item, float):
        return AnyValue(double_value=item)
    if isinstance(item, list):
        any_value = AnyValue()
        any_value.array_value.values.extend(value(x) for x in item)
        return any_value
    return AnyValue(string_value=item)


def attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(item)) for key, item in values.items()]


def span(
    trace_id: bytes,
    *,
    parent: bytes = b"",
    name: str = "span",
    attrs: dict[str, Any] | None = None,
    start_ns: int | None = None,
    duration_ms: float = 100,
    error: str | None = None,
    span_id: bytes | None = None,
) -> Span:
    start = start_ns if start_ns is not None else time.time_ns() - 60_000_000_000
    result = Span(
        trace_id=trace_id,
        span_id=span_id or os.urandom(8),
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1_000_000),
        attributes=attributes(attrs or {}),
    )
    if error is not None:
        result.status.code = Status.STATUS_CODE_ERROR
        result.status.message = error
    return result


def agent_run(case_id: str | None, *, llm_calls: int = 2, tokens: tuple[int, int] = (120, 30), **run: Any) -> list[Span]:
    """One invoke_agent span and its chat spans, as the openai-v2 instrumentation writes them."""
    trace_id = os.urandom(16)
    attrs: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "sql-agent"}
    if case_id is not None:
        attrs["caseloop.case.id"] = case_id
    attrs.update(run.pop("attrs", {}))
    root = span(trace_id, name="invoke_agent sql-agent", attrs=attrs, duration_ms=run.pop("duration_ms", 900), **run)
    chats = [
        span(
            trace_id,
            parent=root.span_id,
            name="chat gpt-4o-mini",
            start_ns=root.start_time_unix_nano + 1_000_000,
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": tokens[0],
                "gen_ai.usage.output_tokens": tokens[1],
            },
        )
        for _ in range(llm_calls)
    ]
    return [root, *chats]


def export(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(attributes({"service.name": "sql-agent", **(resource or {})}))
    resource_spans.scope_spans.add().spans.extend(spans)
    return request
