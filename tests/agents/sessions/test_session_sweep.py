"""The sessions sweeper finishes what lost tasks left behind, and nothing happens twice.

On django-q2's Redis broker (a throwaway redis-server): a task popped by a worker that dies is
gone, which these tests reproduce by popping it and dropping it.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from agents.models import Session, SessionEvent, SessionStatus
from agents.runtime import supervisor
from agents.sessions import services
from agents.sessions.tasks import record_session_outcome
from casebank.models import Case
from reflection.models import ExecutionLog
from tests.support.redis_server import queued_tasks, work_off

pytestmark = pytest.mark.django_db(transaction=True)  # workers run in threads, on their own connections
RUN, OUTCOME = "agents.sessions.tasks.run_session", "agents.sessions.tasks.record_session_outcome"
NOTHING = {"rung": 0, "given_up": 0, "logged": 0}


@pytest.fixture
def queued(api, redis_queue, no_llm, analytics_db):
    """A session accepted by the API, whose run task a dying worker popped: (session, broker)."""
    _, broker = redis_queue
    # Caller SQL makes the data-analysis worker succeed, so the session passes and creates a case.
    response = api.post("/api/sessions/", {"query": "How many customers are there?",
                                           "sql": "SELECT COUNT(*) AS n FROM customers"}, format="json")
    assert response.status_code == 202
    assert [task["func"] for task in queued_tasks(broker)] == [RUN]
    return Session.objects.get(pk=response.json()["session_id"]), broker


def _started_long_ago(session: Session) -> None:
    ago = timedelta(seconds=settings.Q_CLUSTER["timeout"] + 1)
    Session.objects.filter(pk=session.pk).update(started_at=F("started_at") - ago, retry_at=F("retry_at") - ago)


def _logged_once(session: Session) -> Session:
    session.refresh_from_db()
    assert session.status in (SessionStatus.COMPLETED, SessionStatus.FAILED)
    assert (session.log_id, session.retry_at) == (session.id, None)
    assert ExecutionLog.objects.filter(session_id=session.id).count() == 1
    assert SessionEvent.objects.filter(session=session, kind="logged").count() == 1
    return session


def test_it_runs_a_session_whose_task_was_lost_once(queued):
    session, broker = queued
    assert services.sessions_sweep() == NOTHING  # not due before Q_RETRY
    due = session.retry_at
    assert services.sessions_sweep(now=due) == {**NOTHING, "rung": 1}
    assert services.sessions_sweep(now=due) == NOTHING  # a second sweep finds it taken
    assert work_off(broker) == [RUN, OUTCOME]

    session = _logged_once(session)
    assert (session.status, session.attempts) == (SessionStatus.COMPLETED, 1)
    events = SessionEvent.objects.filter(session=session).count()
    # The lost task turns up after all: the session is no longer queued, nothing runs again.
    assert supervisor.run_session(session_id=session.id) is None
    assert services.sessions_sweep(now=due + timedelta(days=1)) == NOTHING
    assert SessionEvent.objects.filter(session=session).count() == events
    assert queued_tasks(broker) == []


def test_it_writes_the_log_of_a_session_whose_log_task_was_lost(queued):
    session, broker = queued
    supervisor.run_session(session_id=session.id)
    assert [task["func"] for task in queued_tasks(broker)] == [OUTCOME]  # popped by a worker that died
    session.refresh_from_db()
    assert session.finished_at is not None and session.log_id is None
    assert not ExecutionLog.objects.filter(session_id=session.id).exists()

    assert services.sessions_sweep() == NOTHING
    assert services.sessions_sweep(now=session.retry_at) == {**NOTHING, "logged": 1}
    session = _logged_once(session)
    # The lost task turns up after all, and a stale copy of the session races the sweeper's:
    # no second log, no second event, no second case.
    stale = Session.objects.get(pk=session.pk)
    stale.log_id = None
    assert record_session_outcome(str(session.id)) is None
    services.session_outcome_record(session=stale)
    _logged_once(session)
    assert Case.objects.filter(pk=session.created_case_id).count() == 1
    assert Case.objects.filter(category="sessions").count() == 1


def test_it_takes_over_a_session_whose_worker_died(queued):
    session, broker = queued
    assert services.session_claim(session_id=session.id) is not None  # the worker started, then was killed
    assert supervisor.run_session(session_id=session.id) is None  # a live claim is not taken over
    _started_long_ago(session)

    assert services.sessions_sweep() == {**NOTHING, "rung": 1}
    assert work_off(broker) == [RUN, OUTCOME]
    session = _logged_once(session)
    assert (session.status, session.attempts) == (SessionStatus.COMPLETED, 2)
    starts = SessionEvent.objects.filter(session=session, kind="phase", data__status="running")
    assert [event.data["attempt"] for event in starts] == [1, 2]


def test_it_fails_a_session_whose_worker_died_on_every_attempt(queued):
    session, broker = queued
    services.session_claim(session_id=session.id)
    Session.objects.filter(pk=session.pk).update(attempts=settings.Q_CLUSTER["max_attempts"])
    _started_long_ago(session)

    assert services.sessions_sweep() == {**NOTHING, "given_up": 1, "logged": 1}
    assert queued_tasks(broker) == []
    session = _logged_once(session)
    assert (session.status, session.passed, session.errors["supervisor"]["type"]) == (SessionStatus.FAILED, False, "WorkerLost")
    log = ExecutionLog.objects.get(session_id=session.id)
    assert (log.success, log.error_type) == (False, "WorkerLost")
    assert services.sessions_sweep(now=timezone.now() + timedelta(days=1)) == NOTHING
