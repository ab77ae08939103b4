"""One function per phase of a session: analyse, retrieve, plan, select, execute, results,
evaluate, respond. Each reads what the phases before it left in a `SessionRun`, does its work
and records it through one named transition of `agents.sessions.services` (an event: audit +
SSE).

The phases that call the LLM (plan, evaluate, respond) are steps (`reflection.llm.steps`):
their database work is `Blocking` (the driver in `agents.runtime.supervisor` runs it in the db
pool) and their LLM calls are awaited on the event loop. The others are blocking functions the
driver runs in the db pool. `execute` is a coroutine that runs the workers' steps at once, each
with its own timeout, all within the session's deadline, their blocking work in the workers'
pool; a worker that fails or hangs costs only its own result (a hung thread cannot be killed: it
is abandoned, and its result is dropped).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings

from agents.models import Session
from agents.runtime import answers
from agents.runtime.evaluation import evaluate_steps
from agents.runtime.notices import DeltaWriter, SessionNotices
from agents.runtime.planning import Plan, analyse, plan_steps, select_agents
from agents.sessions import services
from agents.tools.vision import VISION, Image
from agents.tools.vision import images_load as vision_images_load
from agents.tools.workers import DATA_ANALYSIS, REGISTRY, AgentOutput, AgentTask
from casebank.cases import services as case_services
from casebank.search import selectors as case_selectors
from casebank.search.selectors import SearchHit
from core import task_queue
from reflection.llm.steps import Blocking, Offload, Steps, run_async

logger = logging.getLogger(__name__)


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# Fields that differ between two runs of the same work (a cache hit, the time it took).
_VOLATILE = frozenset({"cached", "elapsed_ms"})


def _same(before: AgentOutput, after: AgentOutput) -> bool:
    """Did a retry return what the previous round did (so another round would too)?"""
    def stable(data: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in data.items() if key not in _VOLATILE}
    return before.ok == after.ok and before.error == after.error and stable(before.data) == stable(after.data)


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
    ran_in: dict[str, int] = field(default_factory=dict)  # the iteration each output in `outputs` is from
    scores: dict[str, float] = field(default_factory=dict)
    passed: bool = False
    # Set when another iteration cannot help (the agents returned what they did the round before).
    stopped: bool = False
    # The session's `BudgetListener` and what `errors` names besides the agents' failures.
    notices: SessionNotices = field(init=False)

    def __post_init__(self) -> None:
        self.notices = SessionNotices(self.session)

    @classmethod
    def start(cls, session: Session) -> SessionRun:
        started = time.monotonic()
        return cls(session=session, started=started, deadline=started + float(settings.AGENTS_SESSION_TIMEOUT_S))

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline


def phase_analyse(run: SessionRun) -> None:
    t = time.monotonic()
    run.analysis = analyse(run.session.query, sql=run.session.sql)
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


def phase_plan(run: SessionRun) -> Steps[None]:
    t = time.monotonic()
    plan = run.plan = yield from plan_steps(query=run.session.query, hits=run.hits, analysis=run.analysis,
                                            deadline=run.deadline, listener=run.notices, key=str(run.session.id))
    run.timings["plan"] = ms_since(t)
    yield Blocking(partial(_plan_record, run, plan))


def _plan_record(run: SessionRun, plan: Plan) -> None:
    if plan.case is not None:
        # Returning a case to a planner counts as a use, recorded off the hot path (inline if
        # the broker is down: one UPDATE).
        case_id = plan.case.id
        task_queue.enqueue_on_commit(
            "casebank.cases.tasks.record_case_use", [str(case_id)],
            if_unavailable=lambda: case_services.case_record_use(case_ids=[case_id]),
        )
    services.session_plan_set(session=run.session, steps=plan.steps, source=plan.source, notes=plan.notes,
                              case=plan.case, case_version=plan.case_version, similarity=plan.similarity, usage=plan.llm,
                              timings_ms=run.timings)


def phase_select(run: SessionRun) -> None:
    """Workers for the plan's steps (first iteration), or the retry of those below the bar."""
    session = run.session
    if run.iteration == 1:
        assert run.plan is not None
        images = (vision_images_load(session.id, session.images) or []) if session.images else []
        base = AgentTask(query=session.query, sql=session.sql, iteration=1, images=images)
        assignments, decisions = select_agents(steps=run.plan.steps, task=base)
        # A step may carry its own SQL (a case filed from a session given SQL replays it).
        run.pending = {a.agent: AgentTask(query=session.query, actions=a.actions, sql=a.sql or session.sql,
                                          iteration=1, listener=run.notices, api_key_id=session.api_key_id,
                                          images=images if a.agent == VISION else [])
                       for a in assignments}
        if session.images and VISION not in run.pending:
            _select_vision(run, decisions, images)
        run.notices.selection(decisions)
        services.session_agents_selected(session=session, decisions=decisions, iteration=1,
                                         errors={**session.errors, **run.notices.errors()})
    else:
        services.session_phase_enter(session=session, phase="execute", data={"retry": sorted(run.pending)},
                                     iteration=run.iteration)


def _select_vision(run: SessionRun, decisions: list[dict], images: list[Image]) -> None:
    """Images were given: the vision agent takes the question too, whatever the plan says
    (empty `images`: they were given but have left the cache)."""
    task = AgentTask(query=run.session.query, actions=["Answer from the images"], iteration=1,
                     listener=run.notices, api_key_id=run.session.api_key_id, images=images)
    problem = REGISTRY[VISION].availability(task) if images else "the images are no longer available"
    if problem:
        decisions.append({"agent": VISION, "decision": "skipped", "reason": problem})
        return
    run.pending[VISION] = task
    decisions.append({"agent": VISION, "decision": "selected", "chosen": VISION, "reason": "the session has images"})


async def _run_worker(session: Session, agent_name: str, task: AgentTask, workers: Offload) -> tuple[AgentOutput, int]:
    started = time.monotonic()
    try:
        output = await run_async(REGISTRY[agent_name].steps(task), workers)
    except Exception as error:  # a worker bug must not sink the session
        logger.exception("agent %s crashed", agent_name)
        output = AgentOutput(ok=False, error=f"{type(error).__name__}: {error}", error_type="AgentCrashed")
    elapsed = ms_since(started)
    switched = output.data.get("source") == "fallback"
    await workers(partial(services.session_agent_result, session=session, agent=agent_name, ok=output.ok, ms=elapsed,
                          error=output.error, source="fallback" if switched else "",
                          notes=output.data.get("notes") if switched else None))
    return output, elapsed


async def phase_execute(run: SessionRun, *, workers: Offload) -> None:
    """Run the pending workers at once, each within its own timeout; their blocking work goes
    to `workers`. A worker past its timeout is cancelled: its result is dropped unrecorded."""
    agent_timeout = float(settings.AGENTS_AGENT_TIMEOUT_S)

    async def one(name: str, task: AgentTask) -> tuple[AgentOutput, int]:
        budget = min(agent_timeout, max(run.deadline - time.monotonic(), 0.0))
        started = time.monotonic()
        try:
            return await asyncio.wait_for(_run_worker(run.session, name, task, workers), timeout=budget)
        except TimeoutError:
            which = "session" if budget < agent_timeout else "agent"
            return AgentOutput(ok=False, error=f"Timed out after {budget:.1f} s ({which} timeout).",
                               error_type="TimeoutError"), ms_since(started)

    t = time.monotonic()
    names = list(run.pending)
    outcomes = await asyncio.gather(*(one(name, run.pending[name]) for name in names))
    run.executed = dict(zip(names, outcomes, strict=True))
    run.timings[f"execute_{run.iteration}"] = ms_since(t)


def phase_results(run: SessionRun) -> None:
    """Record what the workers of this iteration returned (the end of `execute`); stop the
    iterations when a retry returned what the round before did."""
    notices = run.notices
    unchanged = bool(run.outputs) and all(
        name in run.outputs and _same(run.outputs[name], output) for name, (output, _) in run.executed.items()
    )
    for name, (output, elapsed) in run.executed.items():
        previous = run.outputs.get(name)
        if previous is not None and not previous.ok:
            notices.failed_before(name, run.ran_in[name], previous)
        run.outputs[name], run.ran_in[name] = output, run.iteration
        run.timings.setdefault("agents", {})[f"{name}#{run.iteration}"] = elapsed
    # Agents' failures first: the execution log's error is the first real one.
    errors = {**{n: {"type": o.error_type, "message": o.error} for n, o in run.outputs.items() if not o.ok},
              **notices.errors()}
    services.session_results_record(
        session=run.session, ran={n: o.ok for n, (o, _) in run.executed.items()},
        results={n: o.data for n, o in run.outputs.items()}, errors=errors,
        usages=[o for o, _ in run.executed.values()], timings_ms=run.timings,
    )
    if unchanged:
        # Told what went wrong, the agents still returned the same: another round would too.
        notices.note("iterations", "NoProgress",
                     f"Iteration {run.iteration} returned what iteration {run.iteration - 1} did; stopped.")
        run.stopped = True


def phase_evaluate(run: SessionRun) -> Steps[None]:
    """Score the outputs; then decide which agents, if any, run again and what they are told."""
    t = time.monotonic()
    evaluation = yield from evaluate_steps(query=run.session.query, outputs=run.outputs, deadline=run.deadline,
                                           listener=run.notices)
    run.timings[f"evaluate_{run.iteration}"] = ms_since(t)
    run.scores, run.passed = evaluation.scores, evaluation.passed
    threshold = float(settings.QUALITY_THRESHOLD)
    yield Blocking(partial(
        services.session_evaluation_record, session=run.session, scores=run.scores, passed=run.passed,
        method=evaluation.method, notes=evaluation.notes, threshold=threshold, usage=evaluation.llm,
        timings_ms=run.timings,
    ))
    session = run.session
    if run.passed or run.out_of_time():
        run.pending = {}
        return
    retries_text2sql = DATA_ANALYSIS in run.outputs and not run.outputs[DATA_ANALYSIS].ok and not session.sql
    if not retries_text2sql and not answers.extractive(session.query, run.outputs).found:
        # Nothing the agents returned matches the question, and no retry is told anything new
        # that could change that: answer "no answer found" now, not after N rounds.
        run.notices.note("iterations", "NothingMatched", f"Nothing matched the query after iteration {run.iteration}; stopped.")
        run.pending = {}
        return
    # Only the agents below the bar run again, told what went wrong.
    run.pending = {
        name: AgentTask(query=session.query, actions=run.pending[name].actions if name in run.pending else [],
                        sql=run.pending[name].sql if name in run.pending else session.sql,
                        iteration=run.iteration + 1, listener=run.notices, api_key_id=session.api_key_id,
                        images=run.pending[name].images if name in run.pending else [],
                        feedback=run.outputs[name].error or f"quality score {run.scores.get(name, 0):.2f} below {threshold}")
        for name in run.outputs if run.scores.get(name, 0.0) < threshold
    }
    # SQL given by the caller (or a case's step) that was refused or failed will fail the same way again.
    if DATA_ANALYSIS in run.pending and run.pending[DATA_ANALYSIS].sql and not run.outputs[DATA_ANALYSIS].ok:
        run.pending.pop(DATA_ANALYSIS)


def phase_respond(run: SessionRun) -> Steps[None]:
    """End the session with its answer, the single place it is written (`agents.runtime.answers`):
    extractive with citations, or written by the LLM and streamed as `answer_delta` events."""
    t = time.monotonic()
    yield Blocking(partial(services.session_phase_enter, session=run.session, phase="respond", data={}))
    deltas = DeltaWriter(run.session)
    answer = yield from answers.compose_steps(query=run.session.query, outputs=run.outputs, deltas=deltas,
                                              deadline=run.deadline, listener=run.notices)
    yield Blocking(deltas.flush)
    run.timings["respond"] = ms_since(t)
    if answer.problems:
        run.notices.note("answer", "AnswerFallback", " ".join(answer.problems))
    # A session that found nothing to answer with has not passed, whatever the agents scored.
    run.passed = run.passed and answer.found
    errors = {**run.session.errors, **run.notices.errors()}
    if run.out_of_time():
        errors["session"] = {"type": "TimeoutError",
                             "message": f"Session timeout of {settings.AGENTS_SESSION_TIMEOUT_S} s reached."}
    if not run.outputs:
        errors.setdefault("selector", {"type": "NoAgent", "message": "No agent could take any step of the plan."})
    run.timings["total"] = ms_since(run.started)
    yield Blocking(partial(services.session_finish, session=run.session, passed=run.passed, answer=answer.text,
                           errors=errors, timings_ms=run.timings, answer_summary=answer.summary(), usage=answer.llm))
