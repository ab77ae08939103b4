"""The supervisor: analyse -> retrieve cases -> plan -> select -> execute in parallel -> evaluate
-> iterate or finish -> respond, one function per phase in `agents.runtime.phases`.

A session is a coroutine (`drive`). Where its blocking phases run is the caller's choice, an
`Offload`:
- `run_session` (a django-q2 task, tests, `manage.py` callers) runs them in the calling thread
  through asgiref's `async_to_sync`/`sync_to_async(thread_sensitive=True)`, and the workers
  in a private pool;
- the session runner (`agents.runtime.runner`) holds hundreds of sessions on one event loop
  and runs the phases in bounded shared pools, so the loop never blocks.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from uuid import UUID

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings

from agents.models import Session
from agents.runtime import phases
from agents.runtime.phases import SessionRun
from agents.sessions import services
from core import task_queue

logger = logging.getLogger(__name__)

__all__ = ["Offload", "SessionRun", "drive", "run_session"]


@dataclass
class Offload:
    """Where blocking work runs: `db` for database and embedding phases, `llm` for phases that
    may wait on the LLM or its budget (plan, evaluate, respond), `workers` for the agents themselves."""

    db: Callable[[Callable[[SessionRun], None], SessionRun], Awaitable[None]]
    llm: Callable[[Callable[[SessionRun], None], SessionRun], Awaitable[None]]
    workers: Executor


async def drive(run: SessionRun, offload: Offload) -> None:
    """Take a claimed session through every phase to its end (completed or failed)."""
    await offload.db(phases.phase_analyse, run)
    await offload.db(phases.phase_retrieve, run)
    await offload.llm(phases.phase_plan, run)
    max_iterations = int(settings.AGENTS_MAX_ITERATIONS)
    for iteration in range(1, max_iterations + 1):
        run.iteration = iteration
        await offload.db(phases.phase_select, run)
        if not run.pending or run.out_of_time():
            break
        await phases.phase_execute(run, executor=offload.workers)
        await offload.db(phases.phase_results, run)
        if run.stopped:
            break
        await offload.llm(phases.phase_evaluate, run)
        if run.passed or run.out_of_time() or not run.pending:
            break
    await offload.llm(phases.phase_respond, run)


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


async def _in_calling_thread(phase: Callable[[SessionRun], None], run: SessionRun) -> None:
    await sync_to_async(phase, thread_sensitive=True)(run)


def run_session(*, session_id: UUID | str) -> Session | None:
    """Claim and run one session to its end in this thread (a django-q2 task)."""
    session = services.session_claim(session_id=session_id)
    if session is None:
        return None  # already run (a re-delivered task) or unknown
    workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"session-{session.id}")
    try:
        async_to_sync(drive)(SessionRun.start(session), Offload(db=_in_calling_thread, llm=_in_calling_thread,
                                                                workers=workers))
    except Exception as error:
        finish_crashed(session, error)
    finally:
        # A hung worker thread is abandoned, not waited for.
        workers.shutdown(wait=False, cancel_futures=True)
    outcome_due(session)
    return session
