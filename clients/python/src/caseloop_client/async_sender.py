"""The asyncio task that sends queued logs in batches (the async client's)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from caseloop_client.buffer import LogBuffer
from caseloop_client.delivery import Attempt, Post, SendPolicy, Sleep, Step, Tally, deliver
from caseloop_client.logs import Log
from caseloop_client.sender import settle

logger = logging.getLogger("caseloop_client")


class TaskSender:
    """The thread sender's twin on an event loop: started by the first log recorded inside a
    running loop; wakes on a full batch, every `flush_interval` and on `flush()`."""

    def __init__(
        self,
        buffer: LogBuffer,
        post: Callable[[list[Log]], Awaitable[Attempt]],
        policy: SendPolicy,
    ) -> None:
        self._buffer = buffer
        self._post = post
        self.policy = policy
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._deadline: float | None = None

    def queued(self, length: int) -> None:
        self._ensure_started()
        if length >= self.policy.batch_size:
            self.wake()

    def wake(self) -> None:
        if self._loop is None or self._wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)  # a log recorded from another thread

    def _ensure_started(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside a loop: the next flush() or a log inside the loop starts it
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run_forever(), name="caseloop-log-sender")

    async def stop(self, timeout: float) -> bool:
        self._ensure_started()
        self._deadline = time.monotonic() + max(timeout, 0.0)
        self._stopping = True
        self.wake()
        if self._task is None:
            return True
        done, _ = await asyncio.wait({self._task}, timeout=max(timeout, 0.0))
        if not done:
            self._task.cancel()
        return bool(done)

    async def flush(self, timeout: float) -> bool:
        self._ensure_started()
        self.wake()
        end = time.monotonic() + timeout
        while not self._buffer.is_settled():
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.005)
        return True

    async def _run_forever(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.policy.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._send_queued()
            except Exception:  # a bug here must not end the task: logs would pile up unsent
                logger.exception("caseloop_client: the log sender failed; it carries on")
            if self._stopping:
                return

    async def _send_queued(self) -> None:
        while True:
            batch = self._buffer.take(self.policy.batch_size)
            if not batch:
                return
            try:
                tally = await self._drive(deliver(batch, self.policy))
            except asyncio.CancelledError:
                # The loop is ending (asyncio.run cancels what is left): keep the batch for the
                # exit hook; its ids make a second sending harmless if this one got through.
                self._buffer.give_back(batch)
                raise
            settle(self._buffer, batch, tally)

    async def _drive(self, plan: Generator[Step, Any, Tally]) -> Tally:
        step = plan.send(None)
        while True:
            try:
                if isinstance(step, Post):
                    step = plan.send(await self._post(step.logs))
                elif isinstance(step, Sleep):
                    self._buffer.count_retry(step.error)
                    step = plan.send(await self._sleep(step.seconds))
            except StopIteration as finished:
                tally: Tally = finished.value
                return tally

    async def _sleep(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while True:
            deadline = self._deadline
            if deadline is not None and end > deadline:
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            # Short slices so that close() setting a deadline is noticed promptly.
            await asyncio.sleep(min(left, 0.05))
