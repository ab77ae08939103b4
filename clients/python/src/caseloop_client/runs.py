"""`with client.run(case) as run:` times one run of a plan and records it as a log."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from caseloop_client.cases import CaseHit
from caseloop_client.logs import Log, build_log


class Run:
    """One run of a case's plan. Mark it with `success()` or `fail(error)`; left unmarked it
    counts as a success, unless an exception leaves the block (then it is a failure with the
    exception's type and message, and the exception goes on). Works with `with` and `async with`.
    """

    def __init__(
        self,
        enqueue: Callable[[Log], bool],
        case: CaseHit | str | uuid.UUID | None,
        *,
        version: int | None = None,
        session_id: str | uuid.UUID | None = None,
        model: str = "",
        context: dict[str, Any] | None = None,
    ) -> None:
        self._enqueue = enqueue
        self.version: int | None = version  # None: the server takes the case's current version
        if isinstance(case, CaseHit):
            self.case_id: str | None = case.id
            self.version = version if version is not None else case.version
        else:
            self.case_id = str(case) if case is not None else None
        self.session_id = session_id
        self.model = model
        self.context: dict[str, Any] = dict(context or {})
        self.outcome: bool | None = None
        self.error_type = ""
        self.error_message = ""
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost_usd = 0.0
        self.log: Log | None = None
        self._started_at: datetime | None = None
        self._started = 0.0

    def success(self) -> None:
        self.outcome = True

    def fail(self, error: BaseException | str = "", *, error_type: str | None = None) -> None:
        """A failed run; `error` is an exception (its type and message are kept) or a message."""
        self.outcome = False
        if isinstance(error, BaseException):
            self.error_type = error_type or type(error).__name__
            self.error_message = str(error)
        else:
            self.error_type = error_type or self.error_type or "Error"
            self.error_message = str(error)

    def add_tokens(self, input: int = 0, output: int = 0) -> None:  # noqa: A002 - the issue's names
        self.tokens_in += _whole(input)
        self.tokens_out += _whole(output)

    def set_cost(self, usd: float) -> None:
        self.cost_usd = usd

    def set_model(self, model: str) -> None:
        self.model = model

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000 if self._started else 0.0

    def __enter__(self) -> Run:
        self._started_at = datetime.now(timezone.utc)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        elapsed = self.elapsed_ms
        if exc is not None:
            self.fail(exc)
        self._record(elapsed)
        # Returning None lets the exception go on: the agent sees its own error unchanged.

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def _record(self, elapsed_ms: float) -> None:
        try:
            self.log = build_log(
                success=self.outcome is not False,
                execution_time_ms=elapsed_ms,
                case_id=self.case_id,
                case_version=self.version,
                session_id=self.session_id,
                error_type=self.error_type if self.outcome is False else "",
                error_message=self.error_message if self.outcome is False else "",
                tokens_in=self.tokens_in,
                tokens_out=self.tokens_out,
                cost_usd=self.cost_usd,
                model=self.model,
                context=self.context,
                created_at=self._started_at,
            )
        except Exception:  # recording must never take the agent down; build_log cleans what it can
            return
        self._enqueue(self.log)


def _whole(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError, OverflowError):
        return 0
