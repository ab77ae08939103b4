"""What to do after one attempt at sending a batch: the same rules for the thread and the task.

Kept free of I/O so both senders share it and it can be read in one place:

- 2xx: stored (the answer counts created and duplicate ids; a 207 may name refused logs).
- connection error, timeout, 408, 429, 5xx: try again later, after `Retry-After` when given.
- 400 naming logs by their index: the server stored nothing; those logs can never be stored, so
  they are given up and the rest is sent again at once.
- 413, or a 400 naming no log: halves are sent separately (a single log refused so is given up).
- anything else (401, 403, 404): given up, retrying cannot help.
"""
from __future__ import annotations

import json
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Union

from caseloop_client.logs import Log

MAX_BATCH = 1_000  # the server's most logs per request
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Attempt:
    """One POST's result; `status` is None when no answer came (refused, reset, timed out)."""

    status: int | None
    body: Any = None
    retry_after: str | None = None
    error: str = ""
    retryable: bool = True  # False when no answer came for a reason retrying cannot fix (a bad URL)


@dataclass(frozen=True)
class Verdict:
    action: str  # "stored", "retry", "resend", "split" or "give_up"
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    keep: list[int] = field(default_factory=list)  # "resend": the indices to send again
    wait: float | None = None  # "retry": the server's Retry-After, in seconds
    error: str = ""


def judge(attempt: Attempt, size: int) -> Verdict:
    status = attempt.status
    if status is None:
        return Verdict("retry" if attempt.retryable else "give_up", failed=0 if attempt.retryable else size,
                       error=attempt.error or "no answer")
    if 200 <= status < 300:
        return _stored(attempt.body, size)
    error = f"HTTP {status}: {_detail(attempt.body)}"
    if status in RETRY_STATUSES:
        return Verdict("retry", wait=retry_after_seconds(attempt.retry_after), error=error)
    if status == 413:
        return Verdict("split", error=error)
    if status == 400:
        refused = _refused_indices(attempt.body, size)
        if refused:
            keep = [index for index in range(size) if index not in refused]
            return Verdict("resend", failed=len(refused), keep=keep, error=error)
        # Refused as a whole (nesting too deep, say) without naming a log: halving finds the
        # bad ones, so one log the client did not foresee never costs the rest of its batch.
        return Verdict("split", error=error)
    return Verdict("give_up", failed=size, error=error)


def _stored(body: Any, size: int) -> Verdict:
    if not isinstance(body, dict):
        return Verdict("stored", sent=size)
    refused = _refused_indices(body, size)
    stored = size - len(refused)
    created = body.get("created")
    duplicates = body.get("duplicates")
    if isinstance(created, int) and isinstance(duplicates, int):
        return Verdict("stored", sent=created + duplicates, duplicates=duplicates, failed=len(refused))
    return Verdict("stored", sent=stored, failed=len(refused))


def _refused_indices(body: Any, size: int) -> set[int]:
    """The logs a 400 (or a partial 2xx) names by index; empty when it names the whole batch."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, dict) or not errors:
        return set()
    indices = set()
    for key in errors:
        if not (isinstance(key, str) and key.isdigit() and int(key) < size):
            return set()  # an error about the batch itself, not one log
        indices.add(int(key))
    return indices


def _detail(body: Any) -> str:
    """The server's message, with the first error it names (what a developer needs to fix it)."""
    if not isinstance(body, dict):
        return ""
    detail = str(body.get("detail", ""))[:200]
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        key, problem = next(iter(errors.items()))
        detail += f" First: {key}: {json.dumps(problem)[:200]}"
    return detail


def retry_after_seconds(header: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (RFC 9110 allows both)."""
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max((moment - datetime.now(timezone.utc)).total_seconds(), 0.0)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, so many agents recovering together spread out; a
    server's Retry-After is honoured as the least wait (capped at `max_wait`)."""

    base: float = 0.5
    cap: float = 30.0
    max_wait: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** max(attempt - 1, 0)))
        delay = random.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_wait)


@dataclass(frozen=True)
class SendPolicy:
    """How a sender batches and retries (the clients' options, checked once)."""

    batch_size: int
    flush_interval: float
    max_retries: int
    backoff: Backoff

    @classmethod
    def of(cls, *, batch_size: int, flush_interval: float, max_retries: int, backoff: Backoff | None) -> SendPolicy:
        return cls(
            batch_size=min(max(1, batch_size), MAX_BATCH),
            flush_interval=max(flush_interval, 0.001),
            max_retries=max(0, max_retries),
            backoff=backoff or Backoff(),
        )


@dataclass(frozen=True)
class Post:
    """A step of `deliver`: send these logs; answer with the `Attempt`."""

    logs: list[Log]


@dataclass(frozen=True)
class Sleep:
    """A step of `deliver`: wait this long before retrying; answer False if there is no time."""

    seconds: float
    error: str = ""  # why: the driver counts the retry with it


@dataclass
class Tally:
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    error: str = ""

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.duplicates += other.duplicates
        self.failed += other.failed
        self.error = other.error or self.error


Step = Union[Post, Sleep]


def deliver(logs: list[Log], policy: SendPolicy) -> Generator[Step, Any, Tally]:
    """Deliver one batch as far as it can be: the thread and the task both drive this, doing
    the I/O each step asks for (`Post` -> an `Attempt`, `Sleep` -> whether there was time)."""
    tally = Tally()
    attempt = 0
    while logs:
        verdict = judge((yield Post(logs)), len(logs))
        if verdict.error:
            tally.error = verdict.error
        if verdict.action == "stored":
            tally.sent += verdict.sent
            tally.duplicates += verdict.duplicates
            tally.failed += verdict.failed
            return tally
        if verdict.action == "resend":
            tally.failed += verdict.failed
            logs = [logs[index] for index in verdict.keep]
            continue
        if verdict.action == "split" and len(logs) > 1:
            half = len(logs) // 2
            for part in (logs[:half], logs[half:]):
                tally.add((yield from deliver(part, policy)))
            return tally
        if verdict.action == "retry" and attempt < policy.max_retries:
            attempt += 1
            if (yield Sleep(policy.backoff.delay(attempt, verdict.wait), verdict.error)):
                continue
            tally.error = f"{verdict.error} (no time left to retry)"
        tally.failed += len(logs)
        return tally
    return tally
