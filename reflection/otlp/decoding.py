"""An OTLP/HTTP trace export body -> `ExportTraceServiceRequest`, with every bound checked first.

Both encodings go through the official messages (`opentelemetry-proto`): protobuf with the
upb parser (C), JSON with `json_format` after one fix-up: OTLP/JSON writes trace and span ids
as hex, where the protobuf JSON mapping expects base64 (OTLP spec, "JSON Protobuf Encoding").
"""
from __future__ import annotations

import base64
import zlib
from typing import Any

from django.conf import settings
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rest_framework.exceptions import ParseError

from core.errors import DomainError, InvalidInput
from core.parsers import json_loads

# Far above a batch from the SDK (512) or the Collector (8,192 by default), and checked before
# the full parse: an empty span is 2 bytes of protobuf but ~170 bytes parsed, so 8 MiB of them
# would take ~700 MB. JSON is bounded by its objects (`{`) before it is parsed at all.
MAX_SPANS = 20_000
MAX_JSON_OBJECTS = 1_000_000
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
_GZIP_WINDOW = 16 + zlib.MAX_WBITS  # gzip header and trailer, not a raw zlib stream


class BodyTooLarge(DomainError):
    status_code = 413


class UnsupportedMediaType(DomainError):
    status_code = 415


def read_body(stream: Any, *, content_length: int | None) -> bytes:
    """At most `OTLP_MAX_BODY_BYTES` from the request; a longer body is refused unread."""
    limit = settings.OTLP_MAX_BODY_BYTES
    if content_length is not None and content_length > limit:
        raise BodyTooLarge(f"Request body too large: at most {limit} bytes.")
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(f"Request body too large: at most {limit} bytes.")
    return body


def decompress(body: bytes, encoding: str) -> bytes:
    """The body without its Content-Encoding (gzip or none), inflated at most to the limit."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f'Unsupported Content-Encoding "{encoding[:40]}": send gzip or none.')
    limit = settings.OTLP_MAX_DECOMPRESSED_BYTES
    inflater = zlib.decompressobj(_GZIP_WINDOW)
    try:
        # max_length stops a zip bomb after limit + 1 bytes instead of inflating all of it.
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise InvalidInput(f"Malformed gzip body: {error}.") from None
    if len(data) > limit:
        raise BodyTooLarge(f"Decompressed body too large: at most {limit} bytes.")
    if not inflater.eof:
        raise InvalidInput("Malformed gzip body: truncated.")
    if inflater.unused_data:  # a second gzip member, or garbage: never silently dropped
        raise InvalidInput("Malformed gzip body: data after the end of the gzip stream.")
    return data


def parse_request(data: bytes, content_type: str) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            refuse_too_many_spans(_count_spans(data))
            message.ParseFromString(data)
        except DecodeError as error:
            raise InvalidInput(f"Malformed protobuf: {error}.") from None
        return message
    if content_type != JSON:
        raise UnsupportedMediaType(
            f'Unsupported Content-Type "{content_type[:60]}": send {PROTOBUF} or {JSON}.'
        )
    if data.count(b"{") > MAX_JSON_OBJECTS:
        raise InvalidInput(f"An OTLP/JSON export holds at most {MAX_JSON_OBJECTS} objects. Lower the batch size.")
    try:
        value = json_loads(data)
    except ParseError as error:
        raise InvalidInput(str(error.detail)) from None
    if not isinstance(value, dict):
        raise InvalidInput("An OTLP/JSON body is an object with resourceSpans.")
    refuse_too_many_spans(_ids_to_base64(value))
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    # RecursionError: AnyValue nests (kvlistValue in arrayValue ...) deeper than Python's stack.
    except (json_format.ParseError, RecursionError) as error:
        raise InvalidInput(f"Malformed OTLP/JSON: {str(error)[:300]}") from None
    return message


# Keys of the id fields per level, in both spellings json_format accepts.
_SPAN_IDS = (("traceId", 16), ("trace_id", 16), ("spanId", 8), ("span_id", 8), ("parentSpanId", 8), ("parent_span_id", 8))
_LINK_IDS = (("traceId", 16), ("trace_id", 16), ("spanId", 8), ("span_id", 8))


def refuse_too_many_spans(spans: int) -> None:
    if spans > MAX_SPANS:
        raise InvalidInput(f"An export holds at most {MAX_SPANS} spans; this one has {spans}. Lower the batch size.")


def _count_spans(data: bytes) -> int:
    """The spans of a protobuf export, each read as bytes and not parsed (protobuf's decoder
    on a projection of the OTLP messages: see `_SpanCount`)."""
    counter = _SpanCount()
    counter.ParseFromString(data)
    return sum(len(scope.spans) for resource in counter.resource_spans for scope in resource.scope_spans)


def _span_count_message() -> Any:
    """ExportTraceServiceRequest with only the path to the spans (same field numbers) and each
    span as plain bytes: parsing it costs a few bytes per span; every other field is skipped."""
    file = descriptor_pb2.FileDescriptorProto(name="caseloop/otlp_span_count.proto", package="caseloop.otlp", syntax="proto3")
    repeated, message_type = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED, descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    scope = file.message_type.add(name="ScopeSpans")
    scope.field.add(name="spans", number=2, label=repeated, type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES)
    resource = file.message_type.add(name="ResourceSpans")
    resource.field.add(name="scope_spans", number=2, label=repeated, type=message_type, type_name=".caseloop.otlp.ScopeSpans")
    request = file.message_type.add(name="ExportTraceServiceRequest")
    request.field.add(
        name="resource_spans", number=1, label=repeated, type=message_type, type_name=".caseloop.otlp.ResourceSpans"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caseloop.otlp.ExportTraceServiceRequest"))


_SpanCount = _span_count_message()


def _ids_to_base64(body: dict) -> int:
    """Rewrite hex ids as base64 in place and count the spans; what is not shaped like OTLP is
    left to json_format."""
    spans = 0
    for r, resource_spans in enumerate(_items(body, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            items = _items(scope_spans, "spans", "spans")
            spans += len(items)
            if spans > MAX_SPANS:
                return spans
            for index, span in enumerate(items):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{index}]"
                _convert(span, _SPAN_IDS, where)
                for link in _items(span, "links", "links"):
                    _convert(link, _LINK_IDS, f"{where}.links")
    return spans


def _items(parent: Any, camel: str, snake: str) -> list:
    if not isinstance(parent, dict):
        return []
    value = parent.get(camel, parent.get(snake))
    return value if isinstance(value, list) else []


def _convert(item: Any, keys: tuple[tuple[str, int], ...], where: str) -> None:
    if not isinstance(item, dict):
        return
    for key, size in keys:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        if len(raw) != size:
            raise InvalidInput(f"{where}.{key}: {size * 2} hex digits expected, got {value[:40]!r}.")
        item[key] = base64.b64encode(raw).decode()

