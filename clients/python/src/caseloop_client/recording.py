"""What both clients do the same way: record runs and manual logs into the bounded queue."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from caseloop_client.buffer import LogBuffer, Stats
from caseloop_client.cases import CaseHit
from caseloop_client.logs import Log, build_log
from caseloop_client.runs import Run


class Sender(Protocol):
    def queued(self, length: int) -> None: ...


class Recorder:
    """Mixed into `Caseloop` and `AsyncCaseloop`, which set `_buffer`, `_sender` and `_closed`."""

    _buffer: LogBuffer
    _sender: Sender
    _closed: bool

    def run(
        self,
        case: CaseHit | str | uuid.UUID | None,
        version: int | None = None,
        *,
        session_id: str | uuid.UUID | None = None,
        model: str = "",
        context: dict[str, Any] | None = None,
    ) -> Run:
        """`with client.run(hit) as run:` (or `async with`) times the block and records it when
        it ends. A `CaseHit` logs its version; a bare case id lets the server take the current one."""
        return Run(self._enqueue, case, version=version, session_id=session_id, model=model, context=context)

    def log(
        self,
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
    ) -> str | None:
        """Record a run by hand; returns the log's id (None if it could not be queued)."""
        try:
            log = build_log(**{name: value for name, value in locals().items() if name != "self"})
        except Exception:  # never raise into the agent
            self._buffer.count_drop()
            return None
        return log["id"] if self._enqueue(log) else None

    def stats(self) -> Stats:
        return self._buffer.stats()

    def _enqueue(self, log: Log) -> bool:
        if self._closed:
            self._buffer.count_drop()
            return False
        self._sender.queued(self._buffer.put(log))
        return True
