"""Results bounded in bytes as well as rows, enforced while fetching.

A row cap alone does not bound a result: 500 rows of 1 MB cells is 500 MB (issue #16: a 54-byte
PostgreSQL query returned 501 MB, a 2 KB SQLite one 383 MB, and the result was then cached and
stored on the session). So every cell is cut at `ANALYTICS_MAX_CELL_BYTES` and fetching stops
before the rows kept pass `ANALYTICS_MAX_RESULT_BYTES`. Rows are fetched in batches sized from
the bytes seen so far, so the rows held at once stay near the budget however wide one row is
(on PostgreSQL through the server-side cursor: what is not fetched never leaves the server).

Values become JSON-ready here too: a non-finite float (SQLite's `1e999`, PostgreSQL's
`'NaN'::float`) is null, since strict JSON has no NaN or Infinity and rendering it was a 500.
Each of these changes is reported in `notes`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

# What a cell costs beyond its text in the JSON answer: quotes and a separator.
_CELL_OVERHEAD = 3
_MAX_BATCH = 100
CUT_MARK = "…"


class _Cursor(Protocol):
    def fetchmany(self, size: int = ...) -> list[Any]: ...


@dataclass
class BoundedRows:
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class _Tally:
    cut_cells: int = 0
    non_finite: int = 0


def fetch_bounded(cursor: _Cursor, *, row_cap: int, max_bytes: int, max_cell: int) -> BoundedRows:
    """Up to `row_cap` rows from `cursor`, at most `max_bytes` of them, no cell over `max_cell`."""
    result = BoundedRows()
    tally = _Tally()
    used = 0
    raw_seen = 0
    batch = 1  # the first row tells how wide rows are
    while True:
        wanted = min(batch, row_cap + 1 - len(result.rows))  # one past the cap: are there more?
        fetched = cursor.fetchmany(wanted)
        if not fetched:
            break
        for raw in fetched:
            if len(result.rows) == row_cap:
                result.truncated = True
                result.notes.append(f"Only the first {row_cap} rows are returned (ANALYTICS_ROW_CAP).")
                return _finish(result, tally, max_cell)
            raw_seen += _raw_size(raw)
            row = [_bounded_cell(value, max_cell, tally) for value in raw]
            size = sum(_cell_size(value) for value in row)
            if used + size > max_bytes:
                result.truncated = True
                result.notes.append(
                    f"Only the first {len(result.rows)} rows are returned: the next would take the result past "
                    f"{max_bytes} bytes (ANALYTICS_MAX_RESULT_BYTES)."
                )
                return _finish(result, tally, max_cell)
            used += size
            result.rows.append(row)
        average = max(raw_seen // max(len(result.rows), 1), 1)
        batch = max(1, min(_MAX_BATCH, (max_bytes - used) // average))
    return _finish(result, tally, max_cell)


def _finish(result: BoundedRows, tally: _Tally, max_cell: int) -> BoundedRows:
    if tally.cut_cells:
        result.notes.append(
            f"{tally.cut_cells} value(s) longer than {max_cell} bytes were cut, ending with "
            f"{CUT_MARK!r} (ANALYTICS_MAX_CELL_BYTES)."
        )
    if tally.non_finite:
        result.notes.append(f"{tally.non_finite} non-finite number(s) (NaN or ±Infinity) are returned as null.")
    return result


def _raw_size(raw: Any) -> int:
    return sum(len(value) if isinstance(value, (str, bytes, bytearray, memoryview)) else 8 for value in raw)


def _bounded_cell(value: Any, max_cell: int, tally: _Tally) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        tally.non_finite += 1
        return None
    text = value if isinstance(value, str) else str(value)
    # Encoding a value that may be a megabyte long is bounded first by characters (a character is
    # at most 4 bytes in UTF-8), then cut exactly in bytes.
    if len(text) > max_cell or len(text.encode("utf-8", "surrogatepass")) > max_cell:
        tally.cut_cells += 1
        room = max_cell - len(CUT_MARK.encode())
        text = text[:max_cell].encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore") + CUT_MARK
    return text


def _cell_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + _CELL_OVERHEAD
    return len(str(value)) + _CELL_OVERHEAD
