"""Writes of sessions: create, record each step (an event), finish, and feed the reflection loop."""
from __future__ import annotations

import threading
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django_q.tasks import async_task

from agents.models import Session, SessionEvent, SessionStatus
from casebank import services as case_services
from casebank.errors import InvalidInput
from casebank.models import Case, ReviewState
from reflection import ingestion

MAX_QUERY = 5_000
SUPERVISOR_ACTOR = "supervisor"
_NEW_CASE_NAMESPACE = uuid.UUID("2b0e6c1e-8f4a-4c55-9a43-6d2f8e7b1c90")
# Workers of one session append events from several threads; one process runs a session.
_event_lock = threading.Lock()
_SESSION_FIELDS = {
    "status", "phase", "iteration", "plan", "plan_source", "results", "scores", "errors", "timings_ms",
    "answer", "passed", "tokens_in", "tokens_out", "cost_usd", "model", "case", "case_version",
    "case_similarity", "started_at", "finished_at", "log_id", "created_case",
}


def session_create(*, query: str, actor: str, sql: str = "") -> Session:
    """Store a queued session and enqueue its run once the row is committed."""
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
        session.full_clean()
        session.save(force_insert=True)
        SessionEvent.objects.create(session=session, sequence=1, kind="phase", phase="queued", data={"query": session.query})
        session_id = str(session.id)
        transaction.on_commit(lambda: async_task("agents.tasks.run_session", session_id))
    return session


def session_record(session: Session, *, kind: str, data: dict | None = None, **changes: Any) -> SessionEvent:
    """Apply `changes` to the session and append one event (audit trail + SSE) atomically."""
    unknown = set(changes) - _SESSION_FIELDS
    if unknown:
        raise ValueError(f"Not session fields: {sorted(unknown)}")
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
                        session=session, sequence=last + 1, kind=kind, phase=session.phase, data=data or {}
                    )
            except IntegrityError:
                # Another process appended the same sequence (a re-delivered task): take the next.
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def session_claim(*, session_id: uuid.UUID | str) -> Session | None:
    """Move queued -> running exactly once; a second delivery of the task gets None."""
    claimed = Session.objects.filter(pk=session_id, status=SessionStatus.QUEUED).update(
        status=SessionStatus.RUNNING, phase="analyse", started_at=timezone.now()
    )
    if claimed != 1:
        return None
    session = Session.objects.get(pk=session_id)
    session_record(session, kind="phase", data={"status": SessionStatus.RUNNING})
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
        created_case = case_services.case_create(
            case_id=new_case_id,
            title=session.query[:200],
            query=session.query,
            plan=_plan_for_case(session.plan),
            category="sessions",
            tags=["from-session"],
            # Out of retrieval and planning until a reviewer approves it (admin review queue).
            review_state=ReviewState.PENDING,
            actor=SUPERVISOR_ACTOR,
        )
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
    changes: dict[str, Any] = {"log_id": session.id}
    if created_case is not None and session.created_case_id is None:
        changes["created_case"] = created_case
    session_record(session, kind="logged", data={"log_id": str(session.id), "case_id": str(case_id) if case_id else None,
                                                  "created_case_id": str(created_case.id) if created_case else None}, **changes)
    return {"log_id": str(session.id), "case_id": str(case_id) if case_id else None}


def _plan_for_case(plan: Any) -> Any:
    steps = [s for s in plan if isinstance(s, dict) and (s.get("agent") or s.get("agents"))] if isinstance(plan, list) else []
    return steps or [{"agent": "supervisor", "action": "Answer directly"}]


def _first_error(session: Session) -> tuple[str, str]:
    if session.passed:
        return "", ""
    for name, error in (session.errors or {}).items():
        if isinstance(error, dict):
            return str(error.get("type") or "AgentError")[:100], f"{name}: {error.get('message', '')}"[:10_000]
        return "AgentError", f"{name}: {error}"[:10_000]
    return "QualityBelowThreshold", "The evaluation did not pass."
