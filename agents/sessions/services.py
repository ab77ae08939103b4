"""Writes of sessions: create, record each step (an event), finish, and feed the reflection loop."""
from __future__ import annotations

import logging
import math
import threading
import uuid
import weakref
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import redis
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from agents.models import FINISHED_STATUSES, Session, SessionEvent, SessionStatus
from agents.tools.vision import Image, images_keep
from agents.tools.workers import normalise_agent_name
from casebank.cases import services as case_services
from casebank.models import ApiKey, Case, ReviewState
from core import task_queue
from core.errors import InvalidInput, QuotaExceeded
from core.redis_client import redis_for
from reflection.logs import services as ingestion

logger = logging.getLogger(__name__)

MAX_QUERY = 5_000
RUN_TASK = "agents.sessions.tasks.run_session"
OUTCOME_TASK = "agents.sessions.tasks.record_session_outcome"
# Sessions a sweep looks at, oldest due first; the rest wait for the next minute.
SWEEP_LIMIT = 500
SUPERVISOR_ACTOR = "supervisor"
UNFINISHED_STATUSES = (SessionStatus.QUEUED, SessionStatus.RUNNING)
_NEW_CASE_NAMESPACE = uuid.UUID("2b0e6c1e-8f4a-4c55-9a43-6d2f8e7b1c90")
# Workers of one session append events from several threads: one lock per session, so that a
# runner holding hundreds of sessions does not funnel every append through one lock.
_event_locks: weakref.WeakValueDictionary[uuid.UUID, threading.Lock] = weakref.WeakValueDictionary()
_event_locks_guard = threading.Lock()
# The last sequence this process appended to each session it holds: the next event's number
# without a MAX() query (the unique sequence still catches another process appending meanwhile).
_last_sequence: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()
DOORBELL_CHANNEL = "caseloop_sessions"
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


def session_create(
    *, query: str, actor: str, sql: str = "", api_key: ApiKey | None = None, images: list[Image] | None = None,
) -> Session:
    """Store a queued session and enqueue its run once the row is committed.

    The row is the promise: if the task is lost (broker down, worker killed) the sweeper hands
    the run out again at `retry_at`. Images are kept for the run in the cache, the row holds
    their hashes and sizes only."""
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
        if api_key is not None:
            _check_quota(api_key)
        session = Session(query=query.strip(), sql=sql.strip(), created_by=actor[:150], api_key=api_key,
                          owner_id=api_key.user_id if api_key is not None else None,
                          images=[image.ref() for image in images or []])
        if images:
            images_keep(session.id, images)
        session.retry_at = task_queue.redeliver_at(session.created_at)
        session.full_clean()
        session.save(force_insert=True)
        SessionEvent.objects.create(session=session, sequence=1, kind="phase", phase="queued", data={"query": session.query})
        session_id = str(session.id)
        if runner_mode():
            _ring_runners()
        else:
            task_queue.enqueue_on_commit(RUN_TASK, session_id, if_unavailable=lambda: session_due_now(session_id=session_id))
    return session


def session_quota(api_key: ApiKey) -> int:
    """Sessions `api_key` may have queued or running at once (0: no limit)."""
    return int(settings.AGENTS_SESSIONS_PER_KEY[api_key.tier])  # one entry per ApiTier


def _check_quota(api_key: ApiKey) -> None:
    """Refuse a post past the key's quota: the caller retries when one of its sessions ends.
    Refused rather than queued, so a client flooding its key learns at once, not minutes later."""
    quota = session_quota(api_key)
    if quota <= 0:
        return
    # One post of a key at a time counts (PostgreSQL locks the key's row; SQLite has one
    # writer), so two posts together cannot both take the last place.
    ApiKey.objects.select_for_update().filter(pk=api_key.pk).values_list("pk", flat=True).first()
    active = Session.objects.filter(api_key=api_key, status__in=UNFINISHED_STATUSES).count()
    if active >= quota:
        raise QuotaExceeded(
            f"This API key has {active} sessions queued or running; its {api_key.tier} tier allows "
            f"{quota} at once. Post again when one has finished.",
            errors={"sessions": [f"At most {quota} queued or running sessions per {api_key.tier} key."]},
        )


def runner_mode() -> bool:
    """Sessions are run by session runners (`manage.py run_sessions`), not django-q2 tasks."""
    return bool(settings.AGENTS_RUNNER)


def _ring_runners() -> None:
    # PostgreSQL delivers a NOTIFY at commit, and only then: an idle runner wakes as the row
    # becomes visible. Elsewhere Redis, when there is one, carries the ring, published at commit
    # for the same reason; without either, runners poll (`AGENTS_RUNNER_POLL_S`).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [DOORBELL_CHANNEL])
    elif settings.REDIS_URL:
        transaction.on_commit(partial(_publish_ring, settings.REDIS_URL))


def _publish_ring(url: str) -> None:
    try:
        redis_for(url).publish(DOORBELL_CHANNEL, "")
    except redis.RedisError:
        logger.warning("session doorbell: Redis publish failed; runners will find the session by polling")


def _claimable(now: datetime) -> Q:
    """Queued, or running under a runner lease that has passed (its runner died), while starts are left."""
    return Q(status=SessionStatus.QUEUED) | Q(
        status=SessionStatus.RUNNING, lease_until__lt=now, attempts__lt=task_queue.max_attempts(),
    )


def sessions_claim(*, runner: str, limit: int, lease_seconds: float) -> list[Session]:
    """Claim up to `limit` sessions for `runner`, oldest first, leased for `lease_seconds`.

    PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`, so runners claiming together take
    different rows without waiting on each other. SQLite (one writer at a time): each row is
    taken by a conditional UPDATE that checks it is still claimable, so no row is taken twice.
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds)
    claim = {
        "status": SessionStatus.RUNNING, "phase": "analyse", "started_at": now, "attempts": F("attempts") + 1,
        # A dead attempt's partial results are not this attempt's; tokens it spent stay counted.
        "iteration": 0, "results": {}, "scores": {}, "errors": {},
        "lease_owner": runner[:100], "lease_until": lease_until,
        # The sweeper gives up a session whose runners keep dying (`session_give_up`).
        "retry_at": task_queue.lease_end(now),
    }
    with transaction.atomic():
        candidates = (Session.objects.select_for_update(skip_locked=True).filter(_claimable(now))
                      .order_by("created_at").values_list("pk", flat=True)[:limit])
        if connection.vendor == "postgresql":
            ids = list(candidates)
            Session.objects.filter(pk__in=ids).update(**claim)
        else:
            ids = [pk for pk in candidates if Session.objects.filter(_claimable(now), pk=pk).update(**claim) == 1]
    sessions = list(Session.objects.filter(pk__in=ids).order_by("created_at"))
    _append_running(sessions, runner=runner)
    return sessions


def _append_running(sessions: list[Session], *, runner: str) -> None:
    """The "running" event of each just-claimed session, in one INSERT: one by one, a burst of
    claims waited on hundreds of round trips before any session could start."""
    if not sessions:
        return
    lasts = dict(
        SessionEvent.objects.filter(session_id__in=[s.pk for s in sessions]).values("session_id")
        .annotate(last=Max("sequence")).values_list("session_id", "last")
    )
    events = [
        SessionEvent(session=s, sequence=(lasts.get(s.pk) or 0) + 1, kind="phase", phase=s.phase,
                     data={"status": SessionStatus.RUNNING, "attempt": s.attempts, "runner": runner})
        for s in sessions
    ]
    try:
        with transaction.atomic():
            SessionEvent.objects.bulk_create(events)
        for event in events:
            _last_sequence[event.session] = event.sequence
    except IntegrityError:
        # A runner whose lease passed while it still ran appended meanwhile: one at a time.
        for session in sessions:
            _append(session, kind="phase", data={"status": SessionStatus.RUNNING, "attempt": session.attempts,
                                                 "runner": runner})


def sessions_lease_renew(*, runner: str, session_ids: list[uuid.UUID], lease_seconds: float) -> int:
    """Keep holding the sessions `runner` is running; a runner that stops renewing loses them."""
    until = timezone.now() + timedelta(seconds=lease_seconds)
    return Session.objects.filter(pk__in=session_ids, lease_owner=runner[:100], status=SessionStatus.RUNNING).update(
        lease_until=until
    )


def sessions_release(*, runner: str, session_ids: list[uuid.UUID]) -> int:
    """A runner stopping gracefully hands back what it has not finished: queued again, at once."""
    released = Session.objects.filter(pk__in=session_ids, lease_owner=runner[:100], status=SessionStatus.RUNNING)
    count = released.update(status=SessionStatus.QUEUED, phase="queued", lease_owner="", lease_until=None,
                            attempts=F("attempts") - 1)
    if count:
        _ring_runners()
    return count


def session_due_now(*, session_id: uuid.UUID | str) -> int:
    """The task for this session's pending work was not queued: the next sweep hands it out."""
    return Session.objects.filter(pk=session_id, retry_at__isnull=False).update(retry_at=timezone.now())


class Usage(Protocol):
    """What an LLM call or a worker spent: an `LLMResult` or an `AgentOutput`."""

    @property
    def tokens_in(self) -> int: ...
    @property
    def tokens_out(self) -> int: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def model(self) -> str: ...


def _append(session: Session, *, kind: str, data: dict[str, Any] | None = None, **changes: Any) -> SessionEvent:
    """Apply `changes` to the session and append one event (audit trail + SSE) atomically.

    Private: the named transitions below are the only callers, so every change a session can
    go through has a name, typed arguments and one kind of event."""
    unknown = set(changes) - _SESSION_FIELDS
    if unknown:
        raise ValueError(f"Not session fields: {sorted(unknown)}")
    for name in _JSON_FIELDS:
        if name in changes:
            changes[name] = finite_json(changes[name])
    data = finite_json(data or {})
    with _event_locks_guard:
        lock = _event_locks.get(session.pk)
        if lock is None:
            lock = _event_locks[session.pk] = threading.Lock()
    with lock:
        for attempt in range(3):
            try:
                with transaction.atomic():
                    for name, value in changes.items():
                        setattr(session, name, value)
                    if changes:
                        session.save(update_fields=list(changes))
                    last = _last_sequence.get(session)
                    if last is None:
                        last = session.events.aggregate(last=Max("sequence"))["last"] or 0
                    event = SessionEvent.objects.create(
                        session=session, sequence=last + 1, kind=kind, phase=session.phase, data=data
                    )
                _last_sequence[session] = event.sequence
                return event
            except IntegrityError:
                # Another process appended the same sequence (a re-delivered task): take the next.
                _last_sequence.pop(session, None)
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def _usage_changes(session: Session, usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {}
    return {
        "tokens_in": session.tokens_in + (usage.tokens_in or 0),
        "tokens_out": session.tokens_out + (usage.tokens_out or 0),
        "cost_usd": round(session.cost_usd + (usage.cost_usd or 0.0), 8),
        "model": usage.model or session.model,
    }


def session_phase_enter(
    *, session: Session, phase: str, data: dict[str, Any], timings_ms: dict[str, Any] | None = None,
    iteration: int | None = None,
) -> SessionEvent:
    """The session moves on to `phase`; `data` is what the phase before it found."""
    changes: dict[str, Any] = {"phase": phase}
    if timings_ms is not None:
        changes["timings_ms"] = timings_ms
    if iteration is not None:
        changes["iteration"] = iteration
    return _append(session, kind="phase", data=data, **changes)


def session_plan_set(
    *, session: Session, steps: list[dict[str, Any]], source: str, notes: list[str], case: Case | None,
    similarity: float | None, usage: Usage | None, timings_ms: dict[str, Any], case_version: int | None = None,
) -> SessionEvent:
    """The plan is made (from a case, the LLM or the heuristic); agents are selected next.
    `case_version`: the version run, when not the case's current one (an experiment's candidate)."""
    changes: dict[str, Any] = {"plan": steps, "plan_source": source, "timings_ms": timings_ms, **_usage_changes(session, usage)}
    if case is not None:
        changes.update(case=case, case_version=case_version or case.version, case_similarity=similarity)
    data = {"source": source, "steps": steps, "notes": notes, "case_id": str(case.id) if case else None}
    return _append(session, kind="plan", data=data, phase="select", **changes)


def session_agents_selected(
    *, session: Session, decisions: list[dict[str, Any]], iteration: int, errors: dict[str, Any] | None = None,
) -> SessionEvent:
    """Each step's agent is chosen (or substituted, or skipped); they execute next. `errors`, when
    given, is the session's errors with the substitutions and skips named."""
    changes: dict[str, Any] = {} if errors is None else {"errors": errors}
    return _append(session, kind="select", data={"decisions": decisions}, phase="execute", iteration=iteration,
                   **changes)


def session_agent_result(
    *, session: Session, agent: str, ok: bool, ms: int, error: str, source: str = "", notes: list[str] | None = None,
) -> SessionEvent:
    """One worker finished (from its own thread; the fields of the session are untouched).
    `source` and `notes` record a switch, e.g. the analytics fallback database answering."""
    data: dict[str, Any] = {"agent": agent, "ok": ok, "ms": ms, "error": error}
    if source:
        data.update(source=source, notes=list(notes or []))
    return _append(session, kind="agent", data=data)


def session_budget_wait(*, session: Session, purpose: str, wait_s: float) -> SessionEvent:
    """An LLM call of the session waits for its budget (from any of its threads; the fields of
    the session are untouched, `errors` names the wait when the phase that waited records)."""
    data = {"purpose": purpose, "wait_s": wait_s, "budget": purpose.split(".", 1)[0], "during": session.phase}
    return _append(session, kind="budget_wait", data=data)


def session_answer_delta(*, session: Session, text: str) -> SessionEvent:
    """A piece of the answer while an LLM writes it (the final text is set by `session_finish`)."""
    return _append(session, kind="answer_delta", data={"text": text})


def session_results_record(
    *, session: Session, ran: dict[str, bool], results: dict[str, Any], errors: dict[str, Any],
    usages: list[Usage], timings_ms: dict[str, Any],
) -> SessionEvent:
    """The workers of one iteration are done: their outputs, errors and spend; evaluation next."""
    changes: dict[str, Any] = {}
    for usage in usages:
        changes.update(_usage_changes(session, usage))
        for name, value in changes.items():
            setattr(session, name, value)  # the next usage adds to this one
    return _append(session, kind="results", data={"agents": ran}, phase="evaluate", results=results,
                   errors=errors, timings_ms=timings_ms, **changes)


def session_evaluation_record(
    *, session: Session, scores: dict[str, float], passed: bool, method: str, notes: list[str], threshold: float,
    usage: Usage | None, timings_ms: dict[str, Any],
) -> SessionEvent:
    data = {"scores": scores, "passed": passed, "method": method, "notes": notes, "threshold": threshold}
    return _append(session, kind="evaluation", data=data, scores=scores, timings_ms=timings_ms,
                   **_usage_changes(session, usage))


def session_finish(
    *, session: Session, passed: bool, answer: str, errors: dict[str, Any], timings_ms: dict[str, Any],
    answer_summary: dict[str, Any] | None = None, usage: Usage | None = None,
) -> SessionEvent:
    """The session ends: completed when the evaluation passed, failed otherwise. Its execution
    log is due next; the sweeper writes it at `retry_at` if whoever should is lost.
    `answer_summary` (how the answer was made, its sources) is kept as `results["answer"]`;
    `usage` is the answer's own LLM spend."""
    status = SessionStatus.COMPLETED if passed else SessionStatus.FAILED
    now = timezone.now()
    changes: dict[str, Any] = _usage_changes(session, usage)
    if answer_summary is not None:
        changes["results"] = {**session.results, "answer": answer_summary}
    return _append(
        session, kind="phase", data={"status": status, "passed": passed, "scores": session.scores},
        phase="done", status=status, passed=passed, answer=answer, errors=errors, timings_ms=timings_ms,
        finished_at=now, retry_at=task_queue.redeliver_at(now), **changes,
    )


def session_crash(*, session: Session, error: BaseException) -> SessionEvent:
    """The supervisor itself failed: the session still ends, as failed, with the error named."""
    now = timezone.now()
    # A database error's text quotes our own SQL (`UPDATE agents_session ...`): log it, show less.
    message = ("The session could not be saved (a database error; see the server log)."
               if isinstance(error, DatabaseError) else str(error))
    return _append(
        session, kind="phase", data={"status": SessionStatus.FAILED, "error": message[:500]},
        status=SessionStatus.FAILED, phase="failed", passed=False,
        errors={**session.errors, "supervisor": {"type": type(error).__name__, "message": message[:1000]}},
        finished_at=now, retry_at=task_queue.redeliver_at(now),
    )


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
    ) & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))
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
    _append(session, kind="phase", data={"status": SessionStatus.RUNNING, "attempt": session.attempts})
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
    _append(session, kind="phase", data={"status": SessionStatus.FAILED, "error": message},
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
    # The session's key owns its log: it reads it back through GET /api/logs/?session=.
    ingestion.logs_ingest(records=records, api_key_id=session.api_key_id)
    changes: dict[str, Any] = {"log_id": session.id, "retry_at": None}
    if created_case is not None and session.created_case_id is None:
        changes["created_case"] = created_case
    with transaction.atomic():
        # Conditional, so a late task and the sweeper racing here append one "logged" event.
        marked = Session.objects.filter(pk=session.pk, log_id__isnull=True).update(**changes)
        for name, value in changes.items():
            setattr(session, name, value)
        if marked:
            _append(session, kind="logged", data={
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
            elif runner_mode():
                _ring_runners()  # runners claim queued and expired sessions on their own
            else:
                key = str(session_id)
                counts["rung"] += task_queue.enqueue(
                    RUN_TASK, key, if_unavailable=partial(session_due_now, session_id=key)
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
