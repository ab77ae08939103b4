"""Runners claim sessions from the database with leases: never the same session twice while a
lease holds, again once it has passed, and never a session whose runners kept dying."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Session, SessionEvent
from agents.runtime.runner import RunnerConfig, SessionRunner
from agents.sessions import services
from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runner_mode(settings, monkeypatch):
    settings.AGENTS_RUNNER = True
    enqueued: list[tuple] = []
    monkeypatch.setattr("core.task_queue.async_task", lambda *args: enqueued.append(args))
    return enqueued


def _sessions(n: int) -> list[Session]:
    return [services.session_create(query=f"What is our refund policy? ({i})", actor="test") for i in range(n)]


def test_it_gives_each_session_to_one_runner(runner_mode):
    made = {s.pk for s in _sessions(5)}
    first = {s.pk for s in services.sessions_claim(runner="a", limit=3, lease_seconds=30)}
    second = {s.pk for s in services.sessions_claim(runner="b", limit=10, lease_seconds=30)}
    assert len(first) == 3 and len(second) == 2 and first | second == made and not first & second
    assert services.sessions_claim(runner="c", limit=10, lease_seconds=30) == []
    assert runner_mode == []  # no django-q2 task in runner mode


def test_it_reclaims_a_session_once_its_lease_has_passed(runner_mode):
    (session,) = _sessions(1)
    services.sessions_claim(runner="dead", limit=1, lease_seconds=30)
    assert services.sessions_claim(runner="b", limit=1, lease_seconds=30) == []  # the lease holds
    Session.objects.filter(pk=session.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    (again,) = services.sessions_claim(runner="b", limit=1, lease_seconds=30)
    assert again.pk == session.pk and again.attempts == 2 and again.lease_owner == "b"
    # Renewal only counts for the holder.
    assert services.sessions_lease_renew(runner="dead", session_ids=[session.pk], lease_seconds=30) == 0
    assert services.sessions_lease_renew(runner="b", session_ids=[session.pk], lease_seconds=30) == 1


def test_it_does_not_claim_a_session_whose_runners_kept_dying(runner_mode, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "max_attempts": 2}
    (session,) = _sessions(1)
    Session.objects.filter(pk=session.pk).update(status="running", attempts=2,
                                                 lease_until=timezone.now() - timedelta(seconds=1))
    assert services.sessions_claim(runner="b", limit=1, lease_seconds=30) == []


def test_it_hands_back_what_it_did_not_finish(runner_mode):
    (session,) = _sessions(1)
    services.sessions_claim(runner="a", limit=1, lease_seconds=30)
    assert services.sessions_release(runner="a", session_ids=[session.pk]) == 1
    session.refresh_from_db()
    assert (session.status, session.attempts, session.lease_owner) == ("queued", 0, "")


def test_a_runner_runs_many_sessions_at_once_and_logs_each_once(runner_mode, knowledge, no_llm):
    made = _sessions(6)
    runner = SessionRunner(RunnerConfig(capacity=10, db_threads=3, worker_threads=6, lease_seconds=30, poll_seconds=0.05))
    asyncio.run(runner.serve(warm=False, until_idle=True))
    assert runner.finished == 6
    for session in made:
        session.refresh_from_db()
        assert session.status in ("completed", "failed") and session.log_id == session.pk, session.errors
        assert session.answer and session.lease_owner == runner.name
        kinds = list(SessionEvent.objects.filter(session=session).values_list("kind", flat=True))
        assert kinds.count("logged") == 1 and "evaluation" in kinds
    assert ExecutionLog.objects.filter(session_id__in=[s.pk for s in made]).count() == 6
    assert not [task for task in runner_mode if task[0] == services.RUN_TASK]
