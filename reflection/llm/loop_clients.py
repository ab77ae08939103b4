"""One `openai.AsyncOpenAI` per event loop and endpoint: every async LLM call of a loop shares
its connection pool.

An async HTTP client's connections belong to the loop that opened them, so the client cannot be
global: a session runner has one loop for its whole life, `async_to_sync` (a django-q2 task, a
test) a new one per call. The runner sizes its loop's pool to the sessions it holds
(`set_connections`) before they start; whoever ends a loop closes its clients (`close`).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

import httpx2
import openai

# What a loop that was not sized gets (`async_to_sync` in a django-q2 task: one session).
DEFAULT_CONNECTIONS = 20


@dataclass
class _LoopClients:
    connections: int = DEFAULT_CONNECTIONS
    sdks: dict[tuple[str, str | None], openai.AsyncOpenAI] = field(default_factory=dict)


_LOOPS: WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = WeakKeyDictionary()


def _of_this_loop() -> _LoopClients:
    loop = asyncio.get_running_loop()
    clients = _LOOPS.get(loop)
    if clients is None:
        clients = _LOOPS[loop] = _LoopClients()
    return clients


def set_connections(connections: int) -> None:
    """Size the running loop's connection pool (at most `connections` requests in flight, as
    many kept alive); before its first call, as clients made earlier keep their size."""
    _of_this_loop().connections = max(int(connections), 1)


def async_sdk(*, api_key: str, base_url: str | None, timeout: float) -> openai.AsyncOpenAI:
    """The running loop's client of this endpoint. Its own retries are off, as in the sync
    client: ours (`LLMClient`) are the only ones. Each request passes its own timeout."""
    clients = _of_this_loop()
    sdk = clients.sdks.get((api_key, base_url))
    if sdk is None:
        limits = httpx2.Limits(max_connections=clients.connections, max_keepalive_connections=clients.connections)
        sdk = clients.sdks[(api_key, base_url)] = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout,
            http_client=openai.DefaultAsyncHttpx2Client(limits=limits),
        )
    return sdk


def connections() -> int:
    """The running loop's connection limit (what its next client gets)."""
    return _of_this_loop().connections


async def close() -> None:
    """Close the running loop's clients (their connections); the next call makes new ones."""
    clients = _LOOPS.pop(asyncio.get_running_loop(), None)
    if clients is not None:
        for sdk in clients.sdks.values():
            await sdk.close()
