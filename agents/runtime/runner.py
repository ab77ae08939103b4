"""The session runner: one process holds hundreds of sessions at once on one asyncio event loop.

A session mostly waits (on the LLM, on SQL, on the database), so a process per session wastes
its memory and a worker per session caps concurrency at the worker count. Here each session is
a coroutine (`supervisor.drive`). Its LLM calls are awaited on the loop through one
`openai.AsyncOpenAI` whose connection pool is sized to the runner's capacity
(`AGENTS_RUNNER_LLM_CONNECTIONS`); its blocking work runs in two bounded thread pools - `db`
(database and embedding work, the LLM calls' bookkeeping) and `workers` (the agents' SQL and
search) - so the loop itself never blocks and the number of database connections stays bounded.

The database is the source of truth. Sessions are claimed with a lease
(`services.sessions_claim`: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a conditional UPDATE on
SQLite) that the runner renews every third of `AGENTS_RUNNER_LEASE_S`. A runner killed with
`kill -9` stops renewing; once its leases pass, any runner claims those sessions again and runs
them from the start. Each execution log is written once: its id is the session id.

An idle runner sleeps until a posted session rings (PostgreSQL `LISTEN/NOTIFY`, delivered at
commit; on SQLite a Redis publish at commit when `REDIS_URL` is set) or `AGENTS_RUNNER_POLL_S`
passes (runners poll too, for leases that expire without a ring).
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from agents.models import Session
from agents.runtime import supervisor
from agents.runtime.phases import SessionRun
from agents.runtime.pools import BlockingPool
from agents.sessions import services, tasks
from reflection.llm import loop_clients

logger = logging.getLogger(__name__)
# Sessions claimed per query: a burst of posts is taken in a few round trips, not hundreds.
CLAIM_BATCH = 50
SQLITE_DB_THREADS = 2
SQLITE_WORKER_THREADS = 4


@dataclass(frozen=True)
class RunnerConfig:
    capacity: int
    db_threads: int
    worker_threads: int
    lease_seconds: float
    poll_seconds: float
    llm_connections: int = 0  # the loop's LLM connection pool; 0: one per session held (capacity)
    grace_seconds: float = 20.0

    @property
    def llm_pool_size(self) -> int:
        return self.llm_connections or self.capacity

    @classmethod
    def from_settings(cls, **overrides: Any) -> RunnerConfig:
        values: dict[str, Any] = {
            "capacity": int(settings.AGENTS_RUNNER_CAPACITY),
            "db_threads": int(settings.AGENTS_RUNNER_DB_THREADS),
            "worker_threads": int(settings.AGENTS_RUNNER_WORKER_THREADS),
            "llm_connections": int(settings.AGENTS_RUNNER_LLM_CONNECTIONS),
            "lease_seconds": float(settings.AGENTS_RUNNER_LEASE_S),
            "poll_seconds": float(settings.AGENTS_RUNNER_POLL_S),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if connection.vendor == "sqlite":
            # One writer at a time: dozens of threads queueing on SQLite's lock starve each other
            # past its busy timeout. SQLite is the embedded default for a few sessions at once;
            # hundreds want PostgreSQL.
            values["db_threads"] = min(values["db_threads"], SQLITE_DB_THREADS)
            values["worker_threads"] = min(values["worker_threads"], SQLITE_WORKER_THREADS)
        return cls(**values)


# mallopt's parameter number for the arena limit (glibc's malloc.h M_ARENA_MAX).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX would) before the pools start their
    threads: a thread that finds the arenas busy makes another, up to 8 per core, each holding
    memory it freed. False where there is no glibc (or `arenas` is 0)."""
    if arenas <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        return False


def warm_embeddings() -> None:
    """Load the embedding model now, not in the first session's retrieve phase."""
    from casebank.search.embeddings import embed_text

    embed_text("warm up")


class SessionRunner:
    def __init__(self, config: RunnerConfig, *, name: str | None = None) -> None:
        self.config = config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.db = BlockingPool(config.db_threads, name="runner-db")
        self.workers = BlockingPool(config.worker_threads, name="runner-workers")
        # Claims, lease renewals and hand-backs get a thread of their own: queued behind
        # hundreds of sessions' phases in `db`, a claim waited seconds (a new session's
        # pickup) and a renewal could miss its lease.
        self.control = BlockingPool(1, name="runner-control")
        self.running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.finished = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def serve(self, *, warm: bool = True, until_idle: bool = False) -> None:
        """Claim and run sessions until `stop()` (SIGTERM, SIGINT), then finish or hand back
        the ones in hand within `grace_seconds`. `until_idle`: return once nothing is left to
        claim and nothing runs (tests, one-off drains)."""
        # Before any session's first call: the loop's AsyncOpenAI gets a pool of this size.
        loop_clients.set_connections(self.config.llm_pool_size)
        if warm:
            await self.db(warm_embeddings)
        helpers = [asyncio.create_task(self._heartbeat())]
        if connection.vendor == "postgresql":
            helpers.append(asyncio.create_task(self._listen()))
        elif settings.REDIS_URL:
            helpers.append(asyncio.create_task(self._listen_redis(str(settings.REDIS_URL))))
        logger.info("session runner %s: capacity %d", self.name, self.config.capacity)
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                free = self.config.capacity - len(self.running)
                claimed: list[Session] = []
                if free > 0:
                    claimed = await self.control(services.sessions_claim, runner=self.name, limit=min(free, CLAIM_BATCH),
                                            lease_seconds=self.config.lease_seconds)
                    for session in claimed:
                        self.running[session.pk] = asyncio.create_task(self._run_one(session))
                if claimed and len(claimed) == min(free, CLAIM_BATCH):
                    continue  # more may be waiting
                if until_idle and not claimed and not self.running:
                    return
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_seconds)
                except TimeoutError:
                    pass
            await self._drain()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await loop_clients.close()
            for pool in (self.db, self.workers, self.control):
                await asyncio.to_thread(pool.close)

    async def _run_one(self, session: Session) -> None:
        pools = supervisor.Pools(db=self.db, workers=self.workers)
        try:
            try:
                await supervisor.drive(SessionRun.start(session), pools)
            except asyncio.CancelledError:
                raise  # a stop past the grace period: the session is handed back, not failed
            except Exception as error:
                await self.db(supervisor.finish_crashed, session, error)
            try:
                # Written here, at once; if this runner dies first, the sweeper writes it at
                # the session's retry_at (idempotent: the log id is the session id).
                await self.db(tasks.record_session_outcome, str(session.pk))
            except Exception:
                logger.exception("session %s: execution log left to the sweeper", session.pk)
            self.finished += 1
        finally:
            self.running.pop(session.pk, None)
            self._wake.set()  # capacity is free again

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_seconds / 3)
            if self.running:
                try:
                    await self.control(services.sessions_lease_renew, runner=self.name, session_ids=list(self.running),
                                  lease_seconds=self.config.lease_seconds)
                except Exception:  # the database is down: the next beat tries again
                    logger.exception("session runner %s: lease renewal failed", self.name)

    async def _listen(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        conninfo = {k: params[k] for k in ("dbname", "user", "password", "host", "port", "sslmode") if params.get(k)}
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(autocommit=True, **conninfo) as listener:
                    await listener.execute(f"LISTEN {services.DOORBELL_CHANNEL}")
                    async for _ in listener.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # polling still claims; try the doorbell again shortly
                logger.warning("session runner %s: LISTEN failed, polling only", self.name, exc_info=True)
                await asyncio.sleep(1.0)

    async def _listen_redis(self, url: str) -> None:
        """The doorbell without PostgreSQL: `session_create` publishes on Redis at commit."""
        import redis.asyncio as aioredis

        while True:
            client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(services.DOORBELL_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # polling still claims; try the doorbell again shortly
                logger.warning("session runner %s: Redis doorbell failed, polling only", self.name, exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()

    async def _drain(self) -> None:
        if not self.running:
            return
        logger.info("session runner %s: finishing %d sessions", self.name, len(self.running))
        _done, pending = await asyncio.wait(list(self.running.values()), timeout=self.config.grace_seconds)
        if pending:
            left = list(self.running)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.control(services.sessions_release, runner=self.name, session_ids=left)


def run_forever(runner: SessionRunner) -> None:
    """The runner's process: SIGTERM/SIGINT stop it gracefully."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        await runner.serve()

    asyncio.run(main())
