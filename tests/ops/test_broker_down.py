"""The task broker (Redis) is down: the API still accepts work (2xx, never 5xx), stores it, and
the sweepers hand it out once Redis is back.

django-q2 runs on the Redis broker here, as in production, against a throwaway redis-server
that the tests stop and start again on the same port; the machine's Redis is never touched.
"""
from __future__ import annotations

import logging
import time

import pytest
from django.utils import timezone

from agents.models import Session, SessionStatus
from agents.sessions import services as session_services
from casebank.models import Case
from core import metrics, task_queue
from reflection.analysis import services as reflection_services
from reflection.models import ExecutionLog, ReflectionRun, ReflectionRunStatus
from tests.reflection.factories import add_logs
from tests.support.redis_server import PASSWORD, queued_tasks, work_off

RUN_SESSION = "agents.sessions.tasks.run_session"


def _failures(task: str) -> float:
    return metrics.ENQUEUE_FAILURES.labels(task=task)._value.get()


@pytest.mark.django_db(transaction=True)  # the session's workers run in threads, on their own connections
def test_it_accepts_a_session_and_runs_it_once_redis_is_back(api, redis_queue, settings, caplog):
    server, broker = redis_queue
    settings.OPENAI_API_KEY = ""
    server.stop()
    before = _failures(RUN_SESSION)

    with caplog.at_level(logging.WARNING, logger="core.task_queue"):
        response = api.post("/api/sessions/", {"query": "What is our refund policy?"}, format="json")

    assert response.status_code == 202, response.content
    session = Session.objects.get(pk=response.json()["session_id"])
    assert session.status == SessionStatus.QUEUED
    assert session.retry_at <= timezone.now()  # due at the next sweep, not after Q_RETRY
    assert _failures(RUN_SESSION) == before + 1
    assert "left to the sweeper" in caplog.text and PASSWORD not in caplog.text

    server.start()
    task_queue.reset_broker_backoff()
    assert session_services.sessions_sweep() == {"rung": 1, "given_up": 0, "logged": 0}
    assert work_off(broker) == [RUN_SESSION, "agents.sessions.tasks.record_session_outcome"]
    session.refresh_from_db()
    assert session.status in (SessionStatus.COMPLETED, SessionStatus.FAILED) and session.attempts == 1
    assert ExecutionLog.objects.filter(session_id=session.id).count() == 1
    assert session_services.sessions_sweep() == {"rung": 0, "given_up": 0, "logged": 0}


@pytest.mark.django_db
def test_it_counts_searched_cases_as_used_inline_while_redis_is_down(api, redis_queue, make_case,
                                                                    django_capture_on_commit_callbacks):
    server, broker = redis_queue
    case = make_case()
    body = {"query": "monthly revenue by region", "mode": "bm25", "record_use": True}
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/cases/search/", body, format="json").status_code == 200
    assert [task["func"] for task in queued_tasks(broker)] == ["casebank.cases.tasks.record_case_use"]  # the usual way

    server.stop()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/cases/search/", {**body, "query": "revenue by region per month"}, format="json")

    assert response.status_code == 200, response.content
    assert str(case.id) in response.content.decode()
    case.refresh_from_db()
    assert case.usage_count == 1 and case.last_used_at is not None  # counted inline, not lost


@pytest.mark.django_db
def test_it_queues_a_reflection_run_and_runs_it_once_redis_is_back(api, redis_queue, make_case,
                                                                   django_capture_on_commit_callbacks):
    server, broker = redis_queue
    case = make_case()
    add_logs(case, count=3, now=timezone.now())
    server.stop()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/reflection/batch", {}, format="json")

    assert response.status_code == 202, response.content
    run = ReflectionRun.objects.get(pk=response.json()["run_id"])
    assert run.status == ReflectionRunStatus.QUEUED and run.retry_at <= timezone.now()

    server.start()
    task_queue.reset_broker_backoff()
    assert reflection_services.reflection_runs_sweep() == {"rung": 1, "given_up": 0}
    assert work_off(broker) == ["reflection.analysis.tasks.reflection_run_task"]
    run.refresh_from_db()
    assert (run.status, run.cases_analysed, run.retry_at) == (ReflectionRunStatus.COMPLETED, 1, None)


@pytest.mark.django_db
def test_it_ingests_logs_that_reach_the_early_trigger_while_redis_is_down(api, redis_queue, make_case, settings,
                                                                          django_capture_on_commit_callbacks):
    server, _ = redis_queue
    settings.REFLECTION_EARLY_TRIGGER_LOGS = 5
    case = make_case()
    server.stop()
    logs = [{"case_id": str(case.id), "success": True, "execution_time_ms": 20} for _ in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/logs/", logs, format="json")
    # The early run is dropped with a warning (the daily run analyses the case); the logs are stored.
    assert response.status_code == 201, response.content
    assert ExecutionLog.objects.filter(case=case).count() == 5


@pytest.mark.django_db
def test_it_backs_off_the_broker_after_a_failure_and_never_raises(redis_queue, make_case, settings):
    server, _ = redis_queue
    settings.TASK_BROKER_RETRY_SECONDS = 60
    case = make_case()
    server.stop()
    fallbacks = []
    started = time.perf_counter()
    for _ in range(20):
        assert task_queue.enqueue("casebank.cases.tasks.record_case_use", [str(case.id)],
                                  if_unavailable=lambda: fallbacks.append(1)) is False
    assert len(fallbacks) == 20
    assert time.perf_counter() - started < 0.5  # one refused connection, then the broker is skipped
    # A failing fallback is logged, not raised.
    assert task_queue.enqueue("casebank.cases.tasks.record_case_use", [], if_unavailable=lambda: 1 / 0) is False
    with pytest.raises(ImportError):
        task_queue.enqueue("casebank.cases.tasks.no_such_task")  # a misspelt task is a bug: loud
    assert Case.objects.get(pk=case.pk).usage_count == 0
