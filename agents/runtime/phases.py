"""One function per phase of a session: analyse, retrieve, plan, select, execute, evaluate,
respond. Each reads what the phases before it left in a `SessionRun`, does its work and records
it through one named transition of `agents.sessions.services` (an event: audit + SSE).

Every phase but `execute` is blocking (database, embedding, LLM): the driver in
`agents.runtime.supervisor` decides which thread or pool runs it. `execute` is a coroutine that
runs the workers in the executor it is given, each with its own timeout, all within the
session's deadline; a worker that fails or hangs costs only its own result. A hung thread cannot
be killed: it is abandoned and may not write to the session any more.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from agents.models import Session
from agents.runtime.evaluation import evaluate
from agents.runtime.planning import Plan, analyse, make_plan, select_agents
from agents.sessions import services
from agents.tools.workers import REGISTRY, AgentOutput, AgentTask
from casebank.cases import services as case_services
from casebank.search import selectors as case_selectors
from casebank.search.selectors import SearchHit
from core import task_queue

logger = logging.getLogger(__name__)


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@dataclass
class SessionRun:
    """What one attempt at a session has found so far; only the phases change it."""

    session: Session
    started: float
    deadline: float
    timings: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    hits: list[SearchHit] = field(default_factory=list)
    plan: Plan | None = None
    iteration: int = 0
    pending: dict[str, AgentTask] = field(default_factory=dict)
    executed: dict[str, tuple[AgentOutput, int]] = field(default_factory=dict)
    outputs: dict[str, AgentOutput] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    passed: bool = False

    @classmethod
    def start(cls, session: Session) -> SessionRun:
        started = time.monotonic()
        return cls(session=session, started=started, deadline=started + float(settings.AGENTS_SESSION_TIMEOUT_S))

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline


def phase_analyse(run: SessionRun) -> None:
    t = time.monotonic()
    run.analysis = analyse(run.session.query)
    run.timings["analyse"] = ms_since(t)
    services.session_phase_enter(session=run.session, phase="retrieve", data={"analysis": run.analysis},
                                 timings_ms=run.timings)


def phase_retrieve(run: SessionRun) -> None:
    t = time.monotonic()
    run.hits = case_selectors.case_search(query=run.session.query, k=int(settings.AGENTS_SIMILAR_CASES), mode="hybrid")
    run.timings["retrieve"] = ms_since(t)
    similar = [{"case_id": str(h.case.id), "title": h.case.title, "similarity": h.similarity,
                "success_rate": h.case.success_rate, "status": h.case.status, "role": h.role} for h in run.hits]
    services.session_phase_enter(session=run.session, phase="plan", data={"similar_cases": similar}, timings_ms=run.timings)


def phase_plan(run: SessionRun) -> None:
    t = time.monotonic()
    plan = run.plan = make_plan(query=run.session.query, hits=run.hits, analysis=run.analysis, deadline=run.deadline)
    run.timings["plan"] = ms_since(t)
    if plan.case is not None:
        # Returning a case to a planner counts as a use, recorded off the hot path (inline if
        # the broker is down: one UPDATE).
        case_id = plan.case.id
        task_queue.enqueue_on_commit(
            "casebank.cases.tasks.record_case_use", [str(case_id)],
            if_unavailable=lambda: case_services.case_record_use(case_ids=[case_id]),
        )
    services.session_plan_set(session=run.session, steps=plan.steps, source=plan.source, notes=plan.notes,
                              case=plan.case, similarity=plan.similarity, usage=plan.llm, timings_ms=run.timings)


def phase_select(run: SessionRun) -> None:
    """Workers for the plan's steps (first iteration), or the retry of those below the bar."""
    session = run.session
    if run.iteration == 1:
        assert run.plan is not None
        base = AgentTask(query=session.query, sql=session.sql, iteration=1)
        assignments, decisions = select_agents(steps=run.plan.steps, task=base)
        run.pending = {a.agent: AgentTask(query=session.query, actions=a.actions, sql=session.sql, iteration=1)
                       for a in assignments}
        services.session_agents_selected(session=session, decisions=decisions, iteration=1)
    else:
        services.session_phase_enter(session=session, phase="execute", data={"retry": sorted(run.pending)},
                                     iteration=run.iteration)


def _run_worker(session: Session, agent_name: str, task: AgentTask, abandoned: threading.Event) -> tuple[AgentOutput, int]:
    started = time.monotonic()
    try:
        try:
            output = REGISTRY[agent_name].run(task)
        except Exception as error:  # a worker bug must not sink the session
            logger.exception("agent %s crashed", agent_name)
            output = AgentOutput(ok=False, error=f"{type(error).__name__}: {error}", error_type="AgentCrashed")
        elapsed = ms_since(started)
        if not abandoned.is_set():  # timed out: the session has moved on and must not hear from us
            services.session_agent_result(session=session, agent=agent_name, ok=output.ok, ms=elapsed, error=output.error)
        return output, elapsed
    finally:
        # Pool threads outlive the session (and a private pool's threads end without closing
        # what they opened): give the connection back now.
        connection.close()


async def phase_execute(run: SessionRun, *, executor: Executor) -> None:
    """Run the pending workers in parallel in `executor`, each within its own timeout."""
    agent_timeout = float(settings.AGENTS_AGENT_TIMEOUT_S)
    loop = asyncio.get_running_loop()
    abandoned = threading.Event()

    async def one(name: str, task: AgentTask) -> tuple[AgentOutput, int]:
        budget = min(agent_timeout, max(run.deadline - time.monotonic(), 0.0))
        started = time.monotonic()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(executor, _run_worker, run.session, name, task, abandoned), timeout=budget
            )
        except TimeoutError:
            which = "session" if budget < agent_timeout else "agent"
            return AgentOutput(ok=False, error=f"Timed out after {budget:.1f} s ({which} timeout).",
                               error_type="TimeoutError"), ms_since(started)

    t = time.monotonic()
    try:
        names = list(run.pending)
        outcomes = await asyncio.gather(*(one(name, run.pending[name]) for name in names))
    finally:
        abandoned.set()
    run.executed = dict(zip(names, outcomes, strict=True))
    run.timings[f"execute_{run.iteration}"] = ms_since(t)


def phase_results(run: SessionRun) -> None:
    """Record what the workers of this iteration returned (the end of `execute`)."""
    for name, (output, elapsed) in run.executed.items():
        run.outputs[name] = output
        run.timings.setdefault("agents", {})[f"{name}#{run.iteration}"] = elapsed
    errors = {n: {"type": o.error_type, "message": o.error} for n, o in run.outputs.items() if not o.ok}
    services.session_results_record(
        session=run.session, ran={n: o.ok for n, (o, _) in run.executed.items()},
        results={n: o.data for n, o in run.outputs.items()}, errors=errors,
        usages=[o for o, _ in run.executed.values()], timings_ms=run.timings,
    )


def phase_evaluate(run: SessionRun) -> None:
    """Score the outputs; then decide which agents, if any, run again and what they are told."""
    t = time.monotonic()
    evaluation = evaluate(query=run.session.query, outputs=run.outputs, deadline=run.deadline)
    run.timings[f"evaluate_{run.iteration}"] = ms_since(t)
    run.scores, run.passed = evaluation.scores, evaluation.passed
    threshold = float(settings.QUALITY_THRESHOLD)
    services.session_evaluation_record(
        session=run.session, scores=run.scores, passed=run.passed, method=evaluation.method, notes=evaluation.notes,
        threshold=threshold, usage=evaluation.llm, timings_ms=run.timings,
    )
    session = run.session
    # Only the agents below the bar run again, told what went wrong.
    run.pending = {
        name: AgentTask(query=session.query, actions=run.pending[name].actions if name in run.pending else [],
                        sql=session.sql, iteration=run.iteration + 1,
                        feedback=run.outputs[name].error or f"quality score {run.scores.get(name, 0):.2f} below {threshold}")
        for name in run.outputs if run.scores.get(name, 0.0) < threshold
    }
    # Caller SQL that was refused or failed will fail the same way again.
    if session.sql and "data_analysis" in run.pending and not run.outputs["data_analysis"].ok:
        run.pending.pop("data_analysis")


def phase_respond(run: SessionRun) -> None:
    """End the session with its answer. The single place the answer is written: a composer
    that calls an LLM or extracts passages plugs in at `compose_answer`."""
    errors = dict(run.session.errors)
    if run.out_of_time():
        errors["session"] = {"type": "TimeoutError",
                             "message": f"Session timeout of {settings.AGENTS_SESSION_TIMEOUT_S} s reached."}
    if not run.outputs:
        errors.setdefault("selector", {"type": "NoAgent", "message": "No agent could take any step of the plan."})
    run.timings["total"] = ms_since(run.started)
    services.session_finish(session=run.session, passed=run.passed, answer=compose_answer(run.outputs, run.scores),
                            errors=errors, timings_ms=run.timings)


def compose_answer(outputs: dict[str, AgentOutput], scores: dict[str, float]) -> str:
    parts = []
    for output in outputs.values():
        if not output.ok:
            continue
        if "summary" in output.data:
            parts.append(output.data["summary"])
        if output.data.get("sources"):
            titles = ", ".join(dict.fromkeys(s["title"] for s in output.data["sources"]))
            parts.append(f"Relevant sources: {titles}.")
    return " ".join(parts) or "No agent produced a usable answer."
