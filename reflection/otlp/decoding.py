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
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rest_framework.exceptions import ParseError

from core.errors import DomainError, InvalidInput
from core.parsers import json_loads

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
    return data


def parse_request(data: bytes, content_type: str) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            message.ParseFromString(data)
        except DecodeError as error:
            raise InvalidInput(f"Malformed protobuf: {error}.") from None
        return message
    if content_type != JSON:
        raise UnsupportedMediaType(
            f'Unsupported Content-Type "{content_type[:60]}": send {PROTOBUF} or {JSON}.'
        )
    try:
        value = json_loads(data)
    except ParseError as error:
        raise InvalidInput(str(error.detail)) from None
    if not isinstance(value, dict):
        raise InvalidInput("An OTLP/JSON body is an object with resourceSpans.")
    _ids_to_base64(value)
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    # RecursionError: AnyValue nests (kvlistValue in arrayValue ...) deeper than Python's stack.
    except (json_format.ParseError, RecursionError) as error:
        raise InvalidInput(f"Malformed OTLP/JSON: {str(error)[:300]}") from None
    return message


# Keys of the id fields per level, in both spellings json_format accepts.
_SPAN_IDS = (("traceId", 16), ("trace_id", 16), ("spanId", 8), ("span_id", 8), ("parentSpanId", 8), ("parent_span_id", 8))
_LINK_IDS = (("traceId", 16), ("trace_id", 16), ("spanId", 8), ("span_id", 8))


def _ids_to_base64(body: dict) -> None:
    """Rewrite hex ids as base64 in place; what is not shaped like OTLP is left to json_format."""
    for r, resource_spans in enumerate(_items(body, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for index, span in enumerate(_items(scope_spans, "spans", "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{index}]"
                _convert(span, _SPAN_IDS, where)
                for link in _items(span, "links", "links"):
                    _convert(link, _LINK_IDS, f"{where}.links")


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

