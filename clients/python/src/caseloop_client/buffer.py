"""The bounded queue between the agent and the sender, and the counts `stats()` reports.

When the queue is full the OLDEST log is dropped to make room: the newest runs describe the
plans as they are now (a version just approved), which is what reflection needs most after an
outage. Every drop is counted. Putting a log only takes a lock for an append, so the agent's
thread never waits on the network.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from caseloop_client.logs import Log


@dataclass(frozen=True)
class Stats:
    """What happened to the logs so far.

    `sent`: stored by the server (or found already stored: `duplicates`, a re-send after a lost
    answer). `dropped`: pushed out of the full queue, or recorded after `close()`. `retried`:
    requests sent again after a connection error, timeout, 5xx or 429. `failed`: given up on
    (retries used up, refused by the server, still unsent when `close()` ran out of time).
    `queued`: waiting now; `in_flight`: in the request being sent.
    """

    sent: int = 0
    duplicates: int = 0
    dropped: int = 0
    retried: int = 0
    failed: int = 0
    queued: int = 0
    in_flight: int = 0
    last_error: str = ""


class LogBuffer:
    def __init__(self, max_queue: int) -> None:
        self._logs: deque[Log] = deque()
        self._max = max(1, max_queue)
        self._lock = threading.Lock()
        # Signalled when the queue empties with nothing in flight (flush waits on it).
        self.settled = threading.Condition(self._lock)
        self._in_flight = 0
        self._sent = self._duplicates = self._dropped = self._retried = self._failed = 0
        self._dropped_reported = 0
        self._last_error = ""

    def put(self, log: Log) -> int:
        """Queue a log, dropping the oldest when full; the queue's length after."""
        with self._lock:
            if len(self._logs) >= self._max:
                self._logs.popleft()
                self._dropped += 1
            self._logs.append(log)
            return len(self._logs)

    def take(self, count: int) -> list[Log]:
        """Up to `count` logs, oldest first; they count as in flight until `done` is called."""
        with self._lock:
            batch = [self._logs.popleft() for _ in range(min(count, len(self._logs)))]
            self._in_flight += len(batch)
            return batch

    def give_back(self, batch: list[Log]) -> None:
        """Return an unsettled batch to the front of the queue (its sender was cancelled)."""
        with self._lock:
            self._logs.extendleft(reversed(batch))
            self._in_flight -= len(batch)

    def done(self, taken: int, *, sent: int = 0, duplicates: int = 0, failed: int = 0, error: str = "") -> None:
        """Settle a taken batch: how many were stored, already stored, or given up on."""
        with self._lock:
            self._in_flight -= taken
            self._sent += sent
            self._duplicates += duplicates
            self._failed += failed
            if error:
                self._last_error = error
            if not self._logs and not self._in_flight:
                self.settled.notify_all()

    def unreported_drops(self) -> int:
        """Drops since the last call: the sender warns about them once, not per log."""
        with self._lock:
            fresh = self._dropped - self._dropped_reported
            self._dropped_reported = self._dropped
            return fresh

    def count_drop(self) -> None:
        with self._lock:
            self._dropped += 1

    def count_retry(self, error: str) -> None:
        with self._lock:
            self._retried += 1
            self._last_error = error

    def fail_all_queued(self, error: str) -> int:
        with self._lock:
            count = len(self._logs)
            self._logs.clear()
            self._failed += count
            if count:
                self._last_error = error
            if not self._in_flight:
                self.settled.notify_all()
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._logs)

    def is_settled(self) -> bool:
        """Nothing queued and nothing in flight. Call with `settled` held or not: both are safe."""
        return not self._logs and not self._in_flight

    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                sent=self._sent,
                duplicates=self._duplicates,
                dropped=self._dropped,
                retried=self._retried,
                failed=self._failed,
                queued=len(self._logs),
                in_flight=self._in_flight,
                last_error=self._last_error,
            )
