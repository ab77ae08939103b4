"""One execution log as the server takes it (`POST /api/logs/`), cleaned to its limits.

Recording a run must never raise into the agent, and a log the server would refuse is lost for
good, so every value is brought within the server's rules here (reflection/logs/limits.py):
texts are cut, counts clamped, non-finite numbers zeroed (null inside a context), a context that
cannot be JSON, is too large or nested too deep is replaced by a note saying so.
"""
from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timezone
from typing import Any

from caseloop_client._ids import uuid7

MAX_TEXT = 100  # error_type and model
MAX_ERROR_MESSAGE = 10_000
MAX_CONTEXT_BYTES = 64 * 1024
MAX_EXECUTION_TIME_MS = 24 * 3600 * 1000
MAX_INT_COLUMN = 2**31 - 1
# The server refuses a body nested deeper than 64 levels (core/parsers.py), as a 400 for the whole
# batch; the batch's list and the log's object take two of them.
MAX_CONTEXT_DEPTH = 62

Log = dict[str, Any]


def build_log(
    *,
    success: bool,
    execution_time_ms: float,
    case_id: str | uuid.UUID | None = None,
    case_version: int | None = None,
    session_id: str | uuid.UUID | None = None,
    error_type: str = "",
    error_message: str = "",
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: float = 0.0,
    model: str = "",
    context: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    log_id: uuid.UUID | None = None,
) -> Log:
    """A log ready to send, with its own id (re-sending it never stores it twice)."""
    log: Log = {
        "id": str(log_id or uuid7()),
        "success": bool(success),
        "execution_time_ms": _number(execution_time_ms, maximum=MAX_EXECUTION_TIME_MS),
        "created_at": (created_at or datetime.now(timezone.utc)).isoformat(),
    }
    if case_id is not None:
        log["case_id"] = _uuid_text(case_id)
    if case_version is not None:
        version = _count(case_version)
        if version >= 1:
            log["case_version"] = version
    if session_id is not None:
        log["session_id"] = _uuid_text(session_id)
    for name, value, limit in (
        ("error_type", error_type, MAX_TEXT),
        ("error_message", error_message, MAX_ERROR_MESSAGE),
        ("model", model, MAX_TEXT),
    ):
        text = _text(value, limit)
        if text:
            log[name] = text
    for name, count in (("tokens_in", tokens_in), ("tokens_out", tokens_out)):
        if count:
            log[name] = _count(count)
    cost = _number(cost_usd, maximum=float("inf"))
    if cost:
        log["cost_usd"] = cost
    if context:
        log["context"] = _context(context)
    return log


def _uuid_text(value: str | uuid.UUID) -> str:
    # An id that is no UUID is left for the server to name in its answer (the sender then
    # drops that one log and delivers the rest of its batch).
    return str(value)


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value or "")
    # PostgreSQL text cannot hold NUL; the server refuses it rather than cut it.
    return text.replace("\x00", "\ufffd")[:limit]


def _count(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(number, 0), MAX_INT_COLUMN)


def _number(value: Any, *, maximum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if not math.isfinite(number) or number < 0:
        return 0.0
    return min(number, maximum)


def _context(context: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = json.dumps(context, default=str)
    except (TypeError, ValueError, RecursionError) as error:
        return {"caseloop_client": f"context dropped: not JSON ({type(error).__name__})"}
    if len(encoded.encode()) > MAX_CONTEXT_BYTES:
        return {"caseloop_client": f"context dropped: larger than {MAX_CONTEXT_BYTES // 1024} KiB"}
    if "\\u0000" in encoded:
        encoded = encoded.replace("\\u0000", "\\ufffd")
    # NaN and the infinities are no JSON: they come back as null, the rest of the context stays.
    result: dict[str, Any] = json.loads(encoded, parse_int=_bounded_int, parse_constant=lambda _: None)
    if _depth(result) > MAX_CONTEXT_DEPTH:
        return {"caseloop_client": f"context dropped: nested more than {MAX_CONTEXT_DEPTH} levels"}
    return result


def _bounded_int(text: str) -> int | str:
    """The server's JSON (orjson) holds 64-bit integers; a larger one is kept as its digits."""
    number = int(text)
    return number if -(2**63) <= number < 2**64 else text


def _depth(value: Any) -> int:
    """How deep lists and objects nest (`{}` is 1); iterative, as the server counts."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest
