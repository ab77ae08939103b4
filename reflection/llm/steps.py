"""An LLM call written once as steps, run by a sync driver or an async one.

The logic of a call (budget, breaker, retries and backoff, error mapping, call records,
streamed pieces) is a generator that yields what it needs done and is sent the outcome:
- `Send`: one request through the `openai` SDK (a response, or an opened stream);
- `NextChunk`: the next chunk of a stream (None at its end);
- `Pause`: a backoff or a wait for the budget;
- `Blocking`: bookkeeping on the database or the cache (breaker, budget claim, `LLMCall` row).

`run_sync` does each in the calling thread (`openai.OpenAI`, `time.sleep`): reflection's
suggestions, the REST agents, a session's parts that stay synchronous. `run_async` awaits the
request on the event loop through the loop's shared `openai.AsyncOpenAI` (`loop_clients`),
sleeps with `asyncio.sleep` and hands `Blocking` work to `offload` (a bounded pool), so a loop
holding hundreds of sessions never blocks on one. A step's exception is thrown back into the
generator at its `yield`, as if the step had run inline; callers compose steps with `yield from`.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from asgiref.sync import sync_to_async

from reflection.llm import loop_clients

if TYPE_CHECKING:
    from reflection.llm.client import LLMClient

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    client: LLMClient
    request: dict[str, Any]  # keyword arguments of `chat.completions.create`


@dataclass(frozen=True)
class NextChunk:
    stream: Any  # what a `Send` with `stream=True` returned


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Blocking:
    fn: Callable[[], Any]


Step = Send | NextChunk | Pause | Blocking
Steps = Generator[Step, Any, T]


class Offload(Protocol):
    """Runs blocking work off the event loop: `await offload(fn)` returns `fn()`."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


def in_calling_thread(fn: Callable[[], T]) -> Awaitable[T]:
    """The default `Offload`: asgiref's thread-sensitive thread (under `async_to_sync`, the
    thread that called it, with its database connection and transaction)."""
    return sync_to_async(fn, thread_sensitive=True)()


@dataclass(frozen=True)
class _Done:
    value: Any


def _advance(steps: Steps[Any], outcome: Any, failure: Exception | None) -> Step | _Done:
    try:
        return steps.throw(failure) if failure is not None else steps.send(outcome)
    except StopIteration as finished:
        return _Done(finished.value)


def run_sync(steps: Steps[T]) -> T:
    """Run `steps` to their end in this thread."""
    outcome, failure = None, None
    while not isinstance(step := _advance(steps, outcome, failure), _Done):
        try:
            outcome, failure = _do(step), None
        except Exception as error:
            outcome, failure = None, error
    return step.value


async def run_async(steps: Steps[T], offload: Offload = in_calling_thread) -> T:
    """Run `steps` to their end on the running loop, their `Blocking` work through `offload`."""
    outcome, failure = None, None
    while not isinstance(step := _advance(steps, outcome, failure), _Done):
        try:
            outcome, failure = await _do_async(step, offload), None
        except Exception as error:
            outcome, failure = None, error
    return step.value


def _do(step: Step) -> Any:
    if isinstance(step, Send):
        return step.client.sdk.chat.completions.create(**step.request)
    if isinstance(step, NextChunk):
        try:
            return next(step.stream, None)
        except BaseException:
            step.stream.close()  # give its connection back to the pool now
            raise
    if isinstance(step, Pause):
        time.sleep(step.seconds)
        return None
    return step.fn()


async def _do_async(step: Step, offload: Offload) -> Any:
    if isinstance(step, Send):
        return await loop_clients.async_sdk(**step.client.sdk_options).chat.completions.create(**step.request)
    if isinstance(step, NextChunk):
        try:
            return await anext(step.stream, None)
        except BaseException:
            await step.stream.close()  # give its connection back to the loop's pool now
            raise
    if isinstance(step, Pause):
        await asyncio.sleep(step.seconds)
        return None
    return await offload(step.fn)

