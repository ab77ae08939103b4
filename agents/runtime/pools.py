"""Bounded thread pools for a runner's blocking work, each thread with its own database connection.

A pool is an `Offload` (`reflection.llm.steps`): `await pool(fn, *args)` runs `fn` in one of its
threads. Its threads live as long as the runner, so each call first drops a connection that the
server closed or that outlived `CONN_MAX_AGE`, and `close()` closes every thread's connection.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import Any, TypeVar

from django.db import close_old_connections, connections

T = TypeVar("T")


def _fresh(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    close_old_connections()
    return fn(*args, **kwargs)


class BlockingPool:
    def __init__(self, size: int, *, name: str) -> None:
        self.size = size
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(_fresh, fn, *args, **kwargs))

    def close(self) -> None:
        """Close every thread's database connection, then stop the pool; a hung thread is
        abandoned, not waited for."""
        _close_connections(self.executor, self.size)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _close_connections(pool: ThreadPoolExecutor, size: int) -> None:
    """Close the database connection of every thread of `pool` (each is bound to its thread):
    one job per thread, held at a barrier so that no thread takes two."""
    barrier = threading.Barrier(size, timeout=5)

    def close() -> None:
        connections.close_all()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:  # a hung thread never arrives: give up on it
            pass

    wait([pool.submit(close) for _ in range(size)], timeout=10)
