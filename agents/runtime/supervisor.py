"""The supervisor: analyse -> retrieve cases -> plan -> select -> execute in parallel -> evaluate
-> iterate or finish -> respond. Each phase is recorded as a session event (audit + SSE).

Workers run in threads of a private pool driven by asyncio: each has its own timeout, the
session has an overall deadline, and a worker that fails or hangs costs only its own result.
A hung thread cannot be killed; it is abandoned (the pool is shut down without waiting).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from agents import conf
from agents.models import Session, SessionStatus
from agents.runtime import answers
from agents.runtime.evaluation import evaluate
from agents.runtime.notices import DeltaWriter, SessionNotices
from agents.runtime.planning import analyse, make_plan, select_agents
from agents.sessions import services
from agents.tools.workers import DATA_ANALYSIS, REGISTRY, AgentOutput, AgentTask
from casebank.cases import services as case_services
from casebank.search import selectors as case_selectors
from core import task_queue

logger = logging.getLogger(__name__)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _run_in_thread(session: Session, agent_name: str, task: AgentTask, abandoned: threading.Event) -> tuple[AgentOutput, int]:
    started = time.monotonic()
    try:
        output = REGISTRY[agent_name].run(task)
    except Exception as error:  # a worker bug must not sink the session
        logger.exception("agent %s crashed", agent_name)
        output = AgentOutput(ok=False, error=f"{type(error).__name__}: {error}", error_type="AgentCrashed")
    elapsed = _ms(started)
    try:
        if abandoned.is_set():  # timed out: the session has moved on and must not hear from us
            return output, elapsed
        services.session_record(session, kind="agent", data={"agent": agent_name, "ok": output.ok, "ms": elapsed,
                                                             "error": output.error})
    finally:
        connection.close()
    return output, elapsed


async def _execute(session: Session, tasks: dict[str, AgentTask], *, deadline: float) -> dict[str, tuple[AgentOutput, int]]:
    agent_timeout = float(conf.get("AGENTS_AGENT_TIMEOUT_S"))
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=max(len(tasks), 1), thread_name_prefix=f"session-{session.id}")
    abandoned = threading.Event()

    async def one(name: str, task: AgentTask) -> tuple[AgentOutput, int]:
        budget = min(agent_timeout, max(deadline - time.monotonic(), 0.0))
        started = time.monotonic()
        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, _run_in_thread, session, name, task, abandoned), timeout=budget)
        except TimeoutError:
            which = "session" if budget < agent_timeout else "agent"
            return AgentOutput(ok=False, error=f"Timed out after {budget:.1f} s ({which} timeout).",
                               error_type="TimeoutError"), _ms(started)

    try:
        names = list(tasks)
        outcomes = await asyncio.gather(*(one(name, tasks[name]) for name in names))
        return dict(zip(names, outcomes, strict=False))
    finally:
        abandoned.set()
        pool.shutdown(wait=False, cancel_futures=True)


def run_session(*, session_id: Any) -> Session | None:
    session = services.session_claim(session_id=session_id)
    if session is None:
        return None  # already run (a re-delivered task) or unknown
    try:
        _run(session)
    except Exception as error:  # the session must end in a final state whatever happens
        logger.exception("session %s failed", session.id)
        now = timezone.now()
        # A database error's text quotes our own SQL (`UPDATE agents_session ...`): log it, show less.
        message = ("The session could not be saved (a database error; see the server log)."
                   if isinstance(error, DatabaseError) else str(error))
        services.session_record(
            session, kind="phase", data={"status": "failed", "error": message[:500]},
            status=SessionStatus.FAILED, phase="failed", passed=False,
            errors={**session.errors,
                    "supervisor": {"type": type(error).__name__, "message": message[:1000]}},
            finished_at=now, retry_at=task_queue.redeliver_at(now),
        )
    session_id_text = str(session.id)
    task_queue.enqueue_on_commit(
        services.OUTCOME_TASK, session_id_text, if_unavailable=lambda: services.session_due_now(session_id=session_id_text)
    )
    return session


# Fields that differ between two runs of the same work (a cache hit, the time it took).
_VOLATILE = frozenset({"cached", "elapsed_ms"})


def _same(before: AgentOutput, after: AgentOutput) -> bool:
    """Did a retry return what the previous round did (so another round would too)?"""
    def stable(data: dict) -> dict:
        return {key: value for key, value in data.items() if key not in _VOLATILE}
    return before.ok == after.ok and before.error == after.error and stable(before.data) == stable(after.data)


def _add_usage(session: Session, usage: Any) -> dict:
    return {
        "tokens_in": session.tokens_in + (usage.tokens_in or 0),
        "tokens_out": session.tokens_out + (usage.tokens_out or 0),
        "cost_usd": round(session.cost_usd + (usage.cost_usd or 0.0), 8),
        "model": usage.model or session.model,
    }


def _run(session: Session) -> None:
    started = time.monotonic()
    deadline = started + float(conf.get("AGENTS_SESSION_TIMEOUT_S"))
    timings: dict[str, Any] = {}
    notices = SessionNotices(session)

    t = time.monotonic()
    analysis = analyse(session.query, sql=session.sql)
    timings["analyse"] = _ms(t)
    services.session_record(session, kind="phase", data={"analysis": analysis}, phase="retrieve", timings_ms=timings)

    t = time.monotonic()
    hits = case_selectors.case_search(query=session.query, k=int(conf.get("AGENTS_SIMILAR_CASES")), mode="hybrid")
    timings["retrieve"] = _ms(t)
    similar = [{"case_id": str(h.case.id), "title": h.case.title, "similarity": h.similarity,
                "success_rate": h.case.success_rate, "status": h.case.status, "role": h.role} for h in hits]
    services.session_record(session, kind="phase", data={"similar_cases": similar}, phase="plan", timings_ms=timings)

    t = time.monotonic()
    plan = make_plan(query=session.query, hits=hits, analysis=analysis, deadline=deadline, listener=notices)
    timings["plan"] = _ms(t)
    changes: dict[str, Any] = {"plan": plan.steps, "plan_source": plan.source, "timings_ms": timings}
    if plan.case is not None:
        changes.update(case=plan.case, case_version=plan.case.version, case_similarity=plan.similarity)
        # Returning a case to a planner counts as a use, recorded off the hot path (inline if
        # the broker is down: one UPDATE).
        case_id = str(plan.case.id)
        task_queue.enqueue_on_commit(
            "casebank.cases.tasks.record_case_use", [case_id],
            if_unavailable=lambda: case_services.case_record_use(case_ids=[case_id]),
        )
    if plan.llm is not None:
        changes.update(_add_usage(session, plan.llm))
    services.session_record(session, kind="plan", data={"source": plan.source, "steps": plan.steps, "notes": plan.notes,
                                                        "case_id": str(plan.case.id) if plan.case else None},
                            phase="select", **changes)

    outputs: dict[str, AgentOutput] = {}
    ran_in: dict[str, int] = {}  # the iteration each agent's output in `outputs` is from
    scores: dict[str, float] = {}
    passed = False
    pending: dict[str, AgentTask] | None = None
    max_iterations = int(conf.get("AGENTS_MAX_ITERATIONS"))
    for iteration in range(1, max_iterations + 1):
        if pending is None:
            base = AgentTask(query=session.query, sql=session.sql, iteration=iteration)
            assignments, decisions = select_agents(steps=plan.steps, task=base)
            # A step may carry its own SQL (a case filed from a session given SQL replays it).
            pending = {a.agent: AgentTask(query=session.query, actions=a.actions, sql=a.sql or session.sql,
                                          iteration=iteration, listener=notices)
                       for a in assignments}
            notices.selection(decisions)
            services.session_record(session, kind="select", data={"decisions": decisions}, phase="execute",
                                    iteration=iteration, errors={**session.errors, **notices.errors()})
            if not pending:
                break
        else:
            services.session_record(session, kind="phase", data={"retry": sorted(pending)}, phase="execute", iteration=iteration)
        if time.monotonic() >= deadline:
            break

        t = time.monotonic()
        executed = asyncio.run(_execute(session, pending, deadline=deadline))
        timings[f"execute_{iteration}"] = _ms(t)
        unchanged = bool(outputs) and all(name in outputs and _same(outputs[name], output) for name, (output, _) in executed.items())
        for name, (output, elapsed) in executed.items():
            previous = outputs.get(name)
            if previous is not None and not previous.ok:
                notices.failed_before(name, ran_in[name], previous)
            outputs[name], ran_in[name] = output, iteration
            timings.setdefault("agents", {})[f"{name}#{iteration}"] = elapsed
            for field_name, value in _add_usage(session, output).items():
                setattr(session, field_name, value)  # saved with the results below
        # Agents' failures first: the execution log's error is the first real one.
        errors = {**{n: {"type": o.error_type, "message": o.error} for n, o in outputs.items() if not o.ok}, **notices.errors()}
        services.session_record(
            session, kind="results", data={"agents": {n: o.ok for n, (o, _) in executed.items()}}, phase="evaluate",
            results={n: o.data for n, o in outputs.items()}, errors=errors, timings_ms=timings,
            tokens_in=session.tokens_in, tokens_out=session.tokens_out, cost_usd=session.cost_usd, model=session.model,
        )

        if unchanged:
            # Told what went wrong, the agents still returned the same: another round would too.
            notices.note("iterations", "NoProgress", f"Iteration {iteration} returned what iteration {iteration - 1} did; stopped.")
            break

        t = time.monotonic()
        evaluation = evaluate(query=session.query, outputs=outputs, deadline=deadline, listener=notices)
        timings[f"evaluate_{iteration}"] = _ms(t)
        scores, passed = evaluation.scores, evaluation.passed
        extra = _add_usage(session, evaluation.llm) if evaluation.llm is not None else {}
        services.session_record(
            session, kind="evaluation",
            data={"scores": scores, "passed": passed, "method": evaluation.method, "notes": evaluation.notes,
                  "threshold": conf.get("QUALITY_THRESHOLD")},
            scores=scores, timings_ms=timings, **extra,
        )
        if passed or time.monotonic() >= deadline:
            break
        retries_text2sql = DATA_ANALYSIS in outputs and not outputs[DATA_ANALYSIS].ok and not session.sql
        if not retries_text2sql and not answers.extractive(session.query, outputs).found:
            # Nothing the agents returned matches the question, and no retry is told anything
            # new that could change that: answer "no answer found" now, not after N rounds.
            notices.note("iterations", "NothingMatched", f"Nothing matched the query after iteration {iteration}; stopped.")
            break
        threshold = conf.get("QUALITY_THRESHOLD")
        # Only the agents below the bar run again, told what went wrong.
        pending = {
            name: AgentTask(query=session.query, actions=pending[name].actions if name in pending else [],
                            sql=pending[name].sql if name in pending else session.sql, iteration=iteration + 1,
                            listener=notices,
                            feedback=outputs[name].error or f"quality score {scores.get(name, 0):.2f} below {threshold}")
            for name in outputs if scores.get(name, 0.0) < threshold
        }
        # Caller SQL that was refused or failed will fail the same way again.
        if "data_analysis" in pending and pending["data_analysis"].sql and not outputs["data_analysis"].ok:
            pending.pop("data_analysis")
        if not pending:
            break

    # Respond: the answer, streamed as `answer_delta` events when an LLM writes it.
    t = time.monotonic()
    services.session_record(session, kind="phase", data={}, phase="respond")
    deltas = DeltaWriter(session)
    answer = answers.compose(query=session.query, outputs=outputs, on_delta=deltas, deadline=deadline, listener=notices)
    deltas.flush()
    timings["respond"] = _ms(t)
    if answer.llm is not None:
        for field_name, value in _add_usage(session, answer.llm).items():
            setattr(session, field_name, value)
    if answer.problems:
        notices.note("answer", "AnswerFallback", " ".join(answer.problems))
    # A session that found nothing to answer with has not passed, whatever the agents scored.
    passed = passed and answer.found

    timed_out = time.monotonic() >= deadline
    errors = {**session.errors, **notices.errors()}
    if timed_out:
        errors["session"] = {"type": "TimeoutError", "message": f"Session timeout of {conf.get('AGENTS_SESSION_TIMEOUT_S')} s reached."}
    if not outputs:
        errors.setdefault("selector", {"type": "NoAgent", "message": "No agent could take any step of the plan."})
    timings["total"] = _ms(started)
    status = SessionStatus.COMPLETED if passed else SessionStatus.FAILED
    now = timezone.now()
    services.session_record(
        session, kind="phase", data={"status": status, "passed": passed, "scores": scores},
        phase="done", status=status, passed=passed, answer=answer.text,
        results={**session.results, "answer": answer.summary()},
        tokens_in=session.tokens_in, tokens_out=session.tokens_out, cost_usd=session.cost_usd, model=session.model,
        # The execution log is due next: the sweeper writes it if the task that should is lost.
        errors=errors, timings_ms=timings, finished_at=now, retry_at=task_queue.redeliver_at(now),
    )

