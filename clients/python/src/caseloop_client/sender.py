"""The background thread that sends queued logs in batches (the sync client's)."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from caseloop_client.buffer import LogBuffer
from caseloop_client.delivery import Attempt, Post, SendPolicy, Sleep, Step, Tally, deliver
from caseloop_client.logs import Log

logger = logging.getLogger("caseloop_client")


class ThreadSender:
    """Wakes when a batch is full, when `flush_interval` passes or on `flush()`, and sends
    everything queued. Nothing it meets (a dead server, a bug) reaches the agent's thread."""

    def __init__(
        self,
        buffer: LogBuffer,
        post: Callable[[list[Log]], Attempt],
        policy: SendPolicy,
    ) -> None:
        self._buffer = buffer
        self._post = post
        self._policy = policy
        self._wake = threading.Event()
        self._interrupt = threading.Event()  # cuts a backoff wait short when close() sets a deadline
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._loop, name="caseloop-log-sender", daemon=True)
        self._thread.start()

    def queued(self, length: int) -> None:
        """Called after each put: a full batch is sent now rather than at the next interval."""
        if length >= self._policy.batch_size:
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Send what is queued within `timeout`, then end; whether the thread ended in time."""
        self._deadline = time.monotonic() + max(timeout, 0.0)
        self._stopping.set()
        self._interrupt.set()
        self._wake.set()
        self._thread.join(max(timeout, 0.0))
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._policy.flush_interval)
            self._wake.clear()
            try:
                self._send_queued()
            except Exception:  # a bug here must not end the thread: logs would pile up unsent
                logger.exception("caseloop_client: the log sender failed; it carries on")
            if self._stopping.is_set():
                return

    def _send_queued(self) -> None:
        while True:
            batch = self._buffer.take(self._policy.batch_size)
            if not batch:
                return
            settle(self._buffer, batch, drive(deliver(batch, self._policy), self._post, self._retry_after))

    def _retry_after(self, step: Sleep) -> bool:
        self._buffer.count_retry(step.error)
        return self._sleep(step.seconds)

    def _sleep(self, seconds: float) -> bool:
        """Wait before a retry; False if closing leaves no time for it."""
        end = time.monotonic() + seconds
        while True:
            deadline = self._deadline
            if deadline is not None and end > deadline:
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            if self._interrupt.wait(left):
                self._interrupt.clear()


def drive(plan: Generator[Step, Any, Tally], post: Callable[[list[Log]], Attempt],
          wait: Callable[[Sleep], bool]) -> Tally:
    """Run `deliver` with blocking I/O: `post` answers its requests, `wait` its pauses."""
    step = plan.send(None)
    while True:
        try:
            step = plan.send(post(step.logs) if isinstance(step, Post) else wait(step))
        except StopIteration as finished:
            tally: Tally = finished.value
            return tally


def settle(buffer: LogBuffer, batch: list[Log], tally: Tally) -> None:
    """Count a delivered batch (both senders). Warnings first: `flush()` returns once it is counted."""
    if tally.failed:
        logger.warning("caseloop_client: %d log(s) not stored: %s", tally.failed, tally.error)
    dropped = buffer.unreported_drops()
    if dropped:
        logger.warning("caseloop_client: %d log(s) dropped, the queue was full (max_queue)", dropped)
    buffer.done(len(batch), sent=tally.sent, duplicates=tally.duplicates, failed=tally.failed, error=tally.error)
