"""The supervisor: analyse -> retrieve cases -> plan -> select -> execute in parallel -> evaluate
-> iterate or finish -> respond, one function per phase in `agents.runtime.phases`.

A session is a coroutine (`drive`). Its LLM calls (planner, Text2SQL, judge, vision, the
streamed answer) are awaited on the event loop through the loop's one `openai.AsyncOpenAI`;
its blocking work runs where the caller's `Pools` say:
- `run_session` (a django-q2 task, tests, `manage.py` callers) drives it through asgiref's
  `async_to_sync`: database work in the calling thread (`sync_to_async(thread_sensitive=True)`),
  the agents' blocking work in a private pool;
- the session runner (`agents.runtime.runner`) holds hundreds of sessions on one event loop
  and runs that work in bounded shared pools, so the loop never blocks.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar
from uuid import UUID

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection

from agents.models import Session
from agents.runtime import phases
from agents.runtime.phases import SessionRun
from agents.sessions import services
from core import task_queue
from reflection.llm import loop_clients
from reflection.llm.steps import Offload, Steps, in_calling_thread, run_async

logger = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["Pools", "SessionRun", "drive", "run_session"]


@dataclass(frozen=True)
class Pools:
    """Where a session's blocking work runs: `db` for the phases' database and embedding work
    and the LLM calls' bookkeeping (budget, breaker, call records), `workers` for the agents'
    (SQL, search, and their LLM calls' bookkeeping)."""

    db: Offload
    workers: Offload

    async def phase(self, phase: Callable[[SessionRun], None], run: SessionRun) -> None:
        await self.db(partial(phase, run))

    async def steps(self, steps: Steps[None]) -> None:
        await run_async(steps, self.db)


async def drive(run: SessionRun, pools: Pools) -> None:
    """Take a claimed session through every phase to its end (completed or failed)."""
    await pools.phase(phases.phase_analyse, run)
    await pools.phase(phases.phase_retrieve, run)
    await pools.steps(phases.phase_plan(run))
    max_iterations = int(settings.AGENTS_MAX_ITERATIONS)
    for iteration in range(1, max_iterations + 1):
        run.iteration = iteration
        await pools.phase(phases.phase_select, run)
        if not run.pending or run.out_of_time():
            break
        await phases.phase_execute(run, workers=pools.workers)
        await pools.phase(phases.phase_results, run)
        if run.stopped:
            break
        await pools.steps(phases.phase_evaluate(run))
        if run.passed or run.out_of_time() or not run.pending:
            break
    await pools.steps(phases.phase_respond(run))


def finish_crashed(session: Session, error: BaseException) -> None:
    """The session must end in a final state whatever happened to its run."""
    logger.error("session %s failed", session.id, exc_info=error)
    services.session_crash(session=session, error=error)


def outcome_due(session: Session) -> None:
    """Hand the execution log to the queue (the sweeper writes it if that is lost)."""
    session_id_text = str(session.id)
    task_queue.enqueue_on_commit(
        services.OUTCOME_TASK, session_id_text, if_unavailable=lambda: services.session_due_now(session_id=session_id_text)
    )


def _closing_connection(fn: Callable[[], T]) -> T:
    # The private pool's threads end with the session, and a thread's connection is closed by no
    # one else: give it back after each piece of work.
    try:
        return fn()
    finally:
        connection.close()


async def _drive_here(run: SessionRun, workers: ThreadPoolExecutor) -> None:
    loop = asyncio.get_running_loop()
    try:
        await drive(run, Pools(db=in_calling_thread,
                               workers=lambda fn: loop.run_in_executor(workers, _closing_connection, fn)))
    finally:
        await loop_clients.close()  # this loop ends with the session


def run_session(*, session_id: UUID | str) -> Session | None:
    """Claim and run one session to its end in this thread (a django-q2 task)."""
    session = services.session_claim(session_id=session_id)
    if session is None:
        return None  # already run (a re-delivered task) or unknown
    workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"session-{session.id}")
    try:
        async_to_sync(_drive_here)(SessionRun.start(session), workers)
    except Exception as error:
        finish_crashed(session, error)
    finally:
        # A hung worker thread is abandoned, not waited for.
        workers.shutdown(wait=False, cancel_futures=True)
    outcome_due(session)
    return session
