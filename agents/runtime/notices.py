"""What a session's `errors` names besides the agents' final failures: earlier failures that a
later iteration fixed, agents the selector substituted or skipped, and waits for the LLM
budget. Each is also an event (a `select` or `budget_wait` one), but `errors` is where an
operator looks first, so nothing that changed the run stays only in the stream.

Worker threads report budget waits too, hence the lock.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agents.models import Session
from agents.sessions import services
from agents.tools.workers import AgentOutput


class SessionNotices:
    """The session's `BudgetListener` and the collector of everything `errors` must name."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._waits: list[tuple[str, float]] = []
        self._entries: dict[str, dict] = {}

    # -- BudgetListener ------------------------------------------------------------------

    def waiting(self, purpose: str, seconds: float) -> None:
        with self._lock:
            self._waits.append((purpose, seconds))
        services.session_budget_wait(session=self.session, purpose=purpose, wait_s=seconds)

    def exhausted(self, purpose: str, message: str) -> None:
        with self._lock:
            self._entries["budget"] = {"type": "BudgetExhausted", "message": message[:1000]}

    # -- the rest ------------------------------------------------------------------------

    def selection(self, decisions: list[dict]) -> None:
        for decision in decisions:
            agent = decision.get("agent")
            if decision.get("decision") == "substituted":
                self._entries[f"select:{agent}"] = {
                    "type": "AgentSubstituted",
                    "message": f"{agent} could not run ({decision.get('reason')}); {decision.get('chosen')} took its step.",
                }
            elif decision.get("decision") == "skipped":
                self._entries[f"select:{agent}"] = {
                    "type": "AgentSkipped", "message": f"{agent} could not run and had no substitute: {decision.get('reason')}",
                }

    def failed_before(self, name: str, iteration: int, output: AgentOutput) -> None:
        """An agent's failure in `iteration`, kept when a later iteration runs it again."""
        self._entries[f"{name}#{iteration}"] = {"type": output.error_type or "AgentError", "message": output.error[:1000]}

    def note(self, key: str, kind: str, message: str) -> None:
        self._entries[key] = {"type": kind, "message": message[:1000]}

    def errors(self) -> dict[str, dict]:
        with self._lock:
            entries = dict(self._entries)
            if self._waits:
                waited = ", ".join(f"{purpose} ({seconds:.1f} s)" for purpose, seconds in self._waits)
                entries["budget_wait"] = {"type": "BudgetWait",
                                          "message": f"Waited for the LLM budget before: {waited}."}
            return entries


class DeltaWriter:
    """Streams the answer as `answer_delta` events, a few per second rather than one per token
    (each event is a row the SSE stream reads). The `Deltas` of `reflection.llm.streaming`:
    `add` only keeps the piece (it runs on the event loop), `flush` writes the event."""

    def __init__(self, session: Session, *, every: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.every = every
        self.clock = clock
        self._pending: list[str] = []
        self._last = clock()

    def add(self, piece: str) -> bool:
        """Keep `piece`; True when the pieces kept are due to be written."""
        self._pending.append(piece)
        return self.clock() - self._last >= self.every

    def flush(self) -> None:
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        self._last = self.clock()
        services.session_answer_delta(session=self.session, text=text)
