"""The project's one JSON parser (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]).

orjson instead of the standard library: several times faster on the 1,000-log ingestion
batches, and it refuses nesting deeper than its fixed limit (1,024) with an error instead of
recursing until Python's stack gives out. That limit is still too deep for what runs after
parsing: orjson's own encoder stops at 255 levels and DRF's JSONField (`json.dumps`) at
Python's recursion limit, both as a 500. So bodies nested deeper than `MAX_JSON_DEPTH` are
refused here, once for every endpoint. Every decoding problem is a clean 400.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Far more than any plan, context or filter needs; far below every encoder's limit.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"JSON nested more than {MAX_JSON_DEPTH} levels deep; flatten it."


class OrjsonParser(JSONParser):
    """`application/json` bodies through orjson (UTF-8, as RFC 8259 requires)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        return json_loads(stream.read())


def json_loads(body: bytes) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from None
    # Every level opens with `[` or `{`: a body with no more of them than the limit cannot
    # exceed it, and counting bytes in C answers most bodies without a walk.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and nested_deeper_than(value, MAX_JSON_DEPTH):
        raise ParseError(TOO_DEEP)
    return value


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels (a scalar is 0, `[]` is 1).
    Iterative: a recursive walk would itself hit the recursion limit it guards against."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list)))
    return False
