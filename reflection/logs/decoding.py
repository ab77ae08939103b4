"""The fast path of log ingestion: decode and type-check a whole batch in one C pass (msgspec).

Parsing JSON into dicts and then checking each field in Python costs ~20 µs per log, more
than storing it. msgspec decodes straight into typed structs, checking types, ranges and
lengths as it goes, at a fraction of that. It only ever *accepts*: any body it does not
take cleanly (a type error, an unknown field, a NUL, a date it reads differently) goes to
the hand-written validator in `reflection.logs.services`, which defines what is valid and names
every problem. So this module must never accept what that validator refuses;
tests/reflection/logs/test_log_fast_path.py holds the two to it.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from core.parsers import MAX_JSON_DEPTH, nested_deeper_than
from reflection.logs.limits import MAX_BATCH, MAX_ERROR_MESSAGE, MAX_EXECUTION_TIME_MS, MAX_INT_COLUMN, MAX_TEXT

Count = Annotated[int, Meta(ge=0, le=MAX_INT_COLUMN)]
ShortText = Annotated[str, Meta(max_length=MAX_TEXT)]


class LogRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One execution log. Decoded from a body, `id` and `created_at` are None when not sent
    and `execution_time_ms` may be a float; `reflection.logs.services` settles all three before
    anything is stored. Its hand-written validator builds the same records from plain dicts.

    The defaults are the validator's; an explicit null for a text or count is not taken
    here (it goes the slow way, which accepts it), to keep this struct's types plain.
    gc=False: a record never takes part in a reference cycle, and leaving a thousand of them
    per batch out of the garbage collector's tracking makes decoding five times faster.
    """

    success: bool
    execution_time_ms: (
        Annotated[int, Meta(ge=0, le=MAX_EXECUTION_TIME_MS)] | Annotated[float, Meta(ge=0, le=MAX_EXECUTION_TIME_MS)]
    )
    id: uuid.UUID | None = None
    case_id: uuid.UUID | None = None
    case_version: Annotated[int, Meta(ge=1, le=MAX_INT_COLUMN)] | None = None
    session_id: uuid.UUID | None = None
    error_type: ShortText = ""
    error_message: Annotated[str, Meta(max_length=MAX_ERROR_MESSAGE)] = ""
    tokens_in: Count = 0
    tokens_out: Count = 0
    cost_usd: Annotated[float, Meta(ge=0)] = 0.0
    model: ShortText = ""
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: datetime | None = None


_DECODER = msgspec.json.Decoder(list[LogRecord] | LogRecord)
# JSON can only carry a NUL as this escape (raw control characters are invalid JSON).
_NUL_ESCAPE = b"\\u0000"
# Seconds with more than six decimals: msgspec rounds them to the microsecond where the
# validator's fromisoformat truncates. Rare enough to leave to the validator.
_SUB_MICROSECOND = re.compile(rb":\d\d\.\d{7}")


@dataclass(frozen=True)
class TypedBatch:
    """A request body that decoded cleanly, with the bytes kept for the full validator."""

    logs: list[LogRecord]
    body: bytes


def decode_typed(body: bytes) -> TypedBatch | None:
    """The batch as typed structs, or None when only the full validator can judge it."""
    if _NUL_ESCAPE in body or _SUB_MICROSECOND.search(body):  # a NUL is refused anyway: the validator names it
        return None
    try:
        decoded = _DECODER.decode(body)
    # RecursionError: msgspec recurses into deeply nested context values. UnicodeDecodeError:
    # raw invalid UTF-8 (a lone surrogate's bytes) in a string. The full path answers both 400.
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return None
    logs = decoded if isinstance(decoded, list) else [decoded]
    if not 0 < len(logs) <= MAX_BATCH:
        return None
    # The parser's depth limit holds on this path too (the full path refuses the body): a list
    # and a log object are two levels above a context, a single log one.
    room = MAX_JSON_DEPTH - (2 if isinstance(decoded, list) else 1)
    if any(log.context and nested_deeper_than(log.context, room) for log in logs):
        return None
    return TypedBatch(logs=logs, body=body)
