"""Writes of sessions: create, record each step (an event), finish, and feed the reflection loop."""
from __future__ import annotations

import logging
import math
import threading
import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from agents.models import FINISHED_STATUSES, Session, SessionEvent, SessionStatus
from agents.tools.workers import normalise_agent_name
from casebank.cases import services as case_services
from casebank.models import Case, ReviewState
from core import task_queue
from core.errors import InvalidInput
from reflection.logs import services as ingestion

logger = logging.getLogger(__name__)

MAX_QUERY = 5_000
RUN_TASK = "agents.sessions.tasks.run_session"
OUTCOME_TASK = "agents.sessions.tasks.record_session_outcome"
# Sessions a sweep looks at, oldest due first; the rest wait for the next minute.
SWEEP_LIMIT = 500
SUPERVISOR_ACTOR = "supervisor"
_NEW_CASE_NAMESPACE = uuid.UUID("2b0e6c1e-8f4a-4c55-9a43-6d2f8e7b1c90")
# Workers of one session append events from several threads; one process runs a session.
_event_lock = threading.Lock()
# Entries of `errors` that say what changed a run without failing it; the execution log's error is
# the first real failure.
NOTICE_TYPES = frozenset({"BudgetWait", "AgentSubstituted", "AgentSkipped", "NoProgress", "NothingMatched",
                          "AnswerFallback"})
# JSON fields whose values come from agents (SQL rows may hold Infinity or NaN).
_JSON_FIELDS = ("results", "errors", "scores", "plan", "timings_ms")
_SESSION_FIELDS = {
    "status", "phase", "iteration", "plan", "plan_source", "results", "scores", "errors", "timings_ms",
    "answer", "passed", "tokens_in", "tokens_out", "cost_usd", "model", "case", "case_version",
    "case_similarity", "started_at", "finished_at", "log_id", "created_case", "retry_at",
}


def session_create(*, query: str, actor: str, sql: str = "") -> Session:
    """Store a queued session and enqueue its run once the row is committed.

    The row is the promise: if the task is lost (broker down, worker killed) the sweeper hands
    the run out again at `retry_at`."""
    errors: dict[str, list[str]] = {}
    if not isinstance(query, str) or not query.strip():
        errors["query"] = ["A query is required."]
    elif len(query) > MAX_QUERY:
        errors["query"] = [f"At most {MAX_QUERY} characters."]
    if sql and len(sql) > 10_000:
        errors["sql"] = ["At most 10,000 characters."]
    if errors:
        raise InvalidInput("Invalid session.", errors=errors)
    with transaction.atomic():
        session = Session(query=query.strip(), sql=sql.strip(), created_by=actor[:150])
        session.retry_at = task_queue.redeliver_at(session.created_at)
        session.full_clean()
        session.save(force_insert=True)
        SessionEvent.objects.create(session=session, sequence=1, kind="phase", phase="queued", data={"query": session.query})
        session_id = str(session.id)
        task_queue.enqueue_on_commit(RUN_TASK, session_id, if_unavailable=lambda: session_due_now(session_id=session_id))
    return session


def session_due_now(*, session_id: uuid.UUID | str) -> int:
    """The task for this session's pending work was not queued: the next sweep hands it out."""
    return Session.objects.filter(pk=session_id, retry_at__isnull=False).update(retry_at=timezone.now())


def session_record(session: Session, *, kind: str, data: dict | None = None, **changes: Any) -> SessionEvent:
    """Apply `changes` to the session and append one event (audit trail + SSE) atomically."""
    unknown = set(changes) - _SESSION_FIELDS
    if unknown:
        raise ValueError(f"Not session fields: {sorted(unknown)}")
    for name in _JSON_FIELDS:
        if name in changes:
            changes[name] = finite_json(changes[name])
    data = finite_json(data or {})
    with _event_lock:
        for attempt in range(3):
            try:
                with transaction.atomic():
                    for name, value in changes.items():
                        setattr(session, name, value)
                    if changes:
                        session.save(update_fields=list(changes))
                    last = session.events.aggregate(last=Max("sequence"))["last"] or 0
                    return SessionEvent.objects.create(
                        session=session, sequence=last + 1, kind=kind, phase=session.phase, data=data
                    )
            except IntegrityError:
                # Another process appended the same sequence (a re-delivered task): take the next.
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float (Infinity, -Infinity, NaN) made null.

    JSON has no such numbers: PostgreSQL's jsonb refuses them (the whole save fails), SQLite
    stores them but no client can parse the result. A dict that held some gets a
    `non_finite_nulled` count and a note, so the reader knows those nulls were numbers."""
    def clean(item: Any) -> tuple[Any, int]:
        if isinstance(item, float) and not math.isfinite(item):
            return None, 1
        if isinstance(item, dict):
            out, total = {}, 0
            for key, sub in item.items():
                out[key], count = clean(sub)
                total += count
            if total and "rows" in out:
                out["non_finite_nulled"] = total
                out.setdefault("notes", [])
                if isinstance(out["notes"], list):
                    out["notes"] = [*out["notes"], f"{total} non-finite value(s) (Infinity/NaN) shown as null."]
            return out, total
        if isinstance(item, (list, tuple)):
            cleaned = [clean(sub) for sub in item]
            return [c for c, _ in cleaned], sum(n for _, n in cleaned)
        return item, 0

    return clean(value)[0]


def session_claim(*, session_id: uuid.UUID | str) -> Session | None:
    """Start a session once: queued -> running, or take over a running one whose worker died
    (started more than `Q_TIMEOUT` ago, when django-q2 would have killed it anyway). A second
    delivery of the task, or a sweeper's ring, finds it claimed and gets None."""
    now = timezone.now()
    claimable = Q(status=SessionStatus.QUEUED) | Q(
        status=SessionStatus.RUNNING, started_at__lte=task_queue.abandoned_before(now),
        attempts__lt=task_queue.max_attempts(),
    )
    claimed = Session.objects.filter(claimable, pk=session_id).update(
        status=SessionStatus.RUNNING, phase="analyse", started_at=now, attempts=F("attempts") + 1,
        # A dead attempt's partial results are not this attempt's; tokens it spent stay counted.
        iteration=0, results={}, scores={}, errors={},
        # The sweeper looks again when this attempt would be abandoned.
        retry_at=task_queue.lease_end(now),
    )
    if claimed != 1:
        return None
    session = Session.objects.get(pk=session_id)
    session_record(session, kind="phase", data={"status": SessionStatus.RUNNING, "attempt": session.attempts})
    return session


def session_give_up(*, session_id: uuid.UUID | str, now: datetime) -> Session | None:
    """End as failed a session whose worker died on each of its `max_attempts` starts (e.g. the
    session runs it out of memory); its execution log is written like any other failure's."""
    gave_up = Session.objects.filter(
        pk=session_id, status=SessionStatus.RUNNING, started_at__lte=task_queue.abandoned_before(now),
        attempts__gte=task_queue.max_attempts(),
    ).update(status=SessionStatus.FAILED, phase="failed", passed=False, finished_at=now, retry_at=now)
    if gave_up != 1:
        return None
    session = Session.objects.get(pk=session_id)
    message = f"The worker running this session was lost on each of {session.attempts} attempts."
    session_record(session, kind="phase", data={"status": SessionStatus.FAILED, "error": message},
                   errors={**session.errors, "supervisor": {"type": "WorkerLost", "message": message}})
    return session


def session_outcome_record(*, session: Session) -> dict:
    """Write the session's execution log (against its case) and, for a success with no close
    case, a new case pending review. Idempotent: the log id is the session id."""
    created_case = session.created_case
    if session.passed and session.case_id is None and created_case is None:
        # A deterministic id makes a re-delivered task find the case it already created.
        new_case_id = uuid.uuid5(_NEW_CASE_NAMESPACE, str(session.id))
        created_case = Case.objects.defer("embedding").filter(pk=new_case_id).first()
    if session.passed and session.case_id is None and created_case is None:
        try:
            created_case = case_services.case_create(
                case_id=new_case_id,
                title=session.query[:200],
                query=session.query,
                plan=_plan_for_case(session.plan, sql=_working_sql(session)),
                category="sessions",
                tags=["from-session"],
                # Out of retrieval and planning until a reviewer approves it (admin review queue).
                review_state=ReviewState.PENDING,
                actor=SUPERVISOR_ACTOR,
            )
        except IntegrityError:  # the sweeper and a late task raced: the other one made it
            created_case = Case.objects.defer("embedding").get(pk=new_case_id)
    case_id = session.case_id or (created_case.id if created_case else None)
    elapsed = session.finished_at - (session.started_at or session.created_at) if session.finished_at else None
    error_type, error_message = _first_error(session)
    records = ingestion.parse_batch([
        {
            "id": str(session.id),
            "case_id": str(case_id) if case_id else None,
            "case_version": session.case_version if session.case_id else None,
            "session_id": str(session.id),
            "success": bool(session.passed),
            "error_type": error_type,
            "error_message": error_message,
            "execution_time_ms": int(elapsed.total_seconds() * 1000) if elapsed else 0,
            "tokens_in": session.tokens_in,
            "tokens_out": session.tokens_out,
            "cost_usd": session.cost_usd,
            "model": session.model[:100],
            "context": {
                "source": "supervisor",
                "plan_source": session.plan_source,
                "iterations": session.iteration,
                "scores": session.scores,
                "new_case": bool(created_case and session.case_id is None),
            },
        }
    ])
    ingestion.logs_ingest(records=records)
    changes: dict[str, Any] = {"log_id": session.id, "retry_at": None}
    if created_case is not None and session.created_case_id is None:
        changes["created_case"] = created_case
    with transaction.atomic():
        # Conditional, so a late task and the sweeper racing here append one "logged" event.
        marked = Session.objects.filter(pk=session.pk, log_id__isnull=True).update(**changes)
        for name, value in changes.items():
            setattr(session, name, value)
        if marked:
            session_record(session, kind="logged", data={
                "log_id": str(session.id), "case_id": str(case_id) if case_id else None,
                "created_case_id": str(created_case.id) if created_case else None,
            })
    return {"log_id": str(session.id), "case_id": str(case_id) if case_id else None}


def sessions_sweep(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Finish what lost tasks left behind, for sessions whose `retry_at` has passed: ring the
    queue again for a run not started or whose worker died, give up a run after
    `max_attempts` starts, and write a finished session's missing execution log right here
    (idempotent: the log id is the session id).

    Rows are taken by `task_queue.take_due`: two sweeps never act on one together, and a row
    that keeps failing is tried again only after `Q_RETRY`.
    """
    now = now or timezone.now()
    counts = {"rung": 0, "given_up": 0, "logged": 0}
    for session_id, status, attempts in task_queue.take_due(Session, now=now, limit=limit):
        try:
            if status in FINISHED_STATUSES:
                counts["logged"] += _log_if_missing(session_id)
            elif status == SessionStatus.RUNNING and attempts >= task_queue.max_attempts():
                if session_give_up(session_id=session_id, now=now) is not None:
                    counts["given_up"] += 1
                    counts["logged"] += _log_if_missing(session_id)
            else:
                key = str(session_id)
                counts["rung"] += task_queue.enqueue(
                    RUN_TASK, key, if_unavailable=lambda key=key: session_due_now(session_id=key)
                )
        except Exception:  # one session must not stop the sweep; it is tried again at retry_at
            logger.exception("sweep: session %s failed", session_id)
    return counts


def _log_if_missing(session_id: uuid.UUID) -> int:
    session = Session.objects.select_related("case", "created_case").get(pk=session_id)
    if session.log_id is not None:
        Session.objects.filter(pk=session_id).update(retry_at=None)
        return 0
    session_outcome_record(session=session)
    return 1


def _working_sql(session: Session) -> str:
    """The SQL that answered: the caller's, else the one Text2SQL wrote, if it returned columns."""
    if session.sql:
        return session.sql
    data = (session.results or {}).get("data_analysis")
    if isinstance(data, dict) and data.get("columns") and data.get("sql"):
        return str(data["sql"])
    return ""


def _plan_for_case(plan: Any, *, sql: str = "") -> Any:
    """The session's plan as a reusable case plan; the data step keeps the SQL that worked, so
    the case replays without an LLM (the selector hands a step's `sql` to the worker)."""
    steps = [dict(s) for s in plan if isinstance(s, dict) and (s.get("agent") or s.get("agents"))] if isinstance(plan, list) else []
    if sql:
        data_steps = [s for s in steps if normalise_agent_name(s.get("agent")) == "data_analysis"]
        if data_steps:
            data_steps[0]["sql"] = sql
        else:
            steps.insert(0, {"agent": "data_analysis", "action": "Run the saved query", "sql": sql})
    return steps or [{"agent": "supervisor", "action": "Answer directly"}]


def _first_error(session: Session) -> tuple[str, str]:
    if session.passed:
        return "", ""
    for name, error in (session.errors or {}).items():
        if isinstance(error, dict) and error.get("type") in NOTICE_TYPES:
            continue
        if isinstance(error, dict):
            return str(error.get("type") or "AgentError")[:100], f"{name}: {error.get('message', '')}"[:10_000]
        return "AgentError", f"{name}: {error}"[:10_000]
    return "QualityBelowThreshold", "The evaluation did not pass."
