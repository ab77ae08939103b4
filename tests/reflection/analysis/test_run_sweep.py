"""The runs sweeper hands out again the runs whose task was lost, exactly once.

On django-q2's Redis broker (a throwaway redis-server): a task popped by a worker that dies is
gone, which these tests reproduce by popping it and dropping it.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from reflection.analysis import run_claims, services
from reflection.analysis.tasks import reflection_run_task
from reflection.models import CaseAnalysis, CaseReflectionState, ReflectionRun, ReflectionRunStatus
from tests.reflection.factories import add_logs
from tests.support.redis_server import queued_tasks, work_off

pytestmark = pytest.mark.django_db
RUN_TASK = "reflection.analysis.tasks.reflection_run_task"


def _queued_run(capture) -> ReflectionRun:
    with capture(execute=True):
        run = services.reflection_run_start(requested_by="sweep test")
    return run


def _started_long_ago(run: ReflectionRun) -> None:
    """The worker that claimed the run died a task timeout ago."""
    ago = timedelta(seconds=settings.Q_CLUSTER["timeout"] + 1)
    ReflectionRun.objects.filter(pk=run.pk).update(started_at=F("started_at") - ago, retry_at=F("retry_at") - ago)


def _analyses_per_case(run: ReflectionRun) -> dict:
    return {case_id: CaseAnalysis.objects.filter(run=run, case_id=case_id).count()
            for case_id in CaseAnalysis.objects.filter(run=run).values_list("case_id", flat=True)}


def test_it_rings_once_for_a_run_whose_task_was_lost(redis_queue, make_case, django_capture_on_commit_callbacks):
    _, broker = redis_queue
    case = make_case()
    add_logs(case, count=3, now=timezone.now())
    run = _queued_run(django_capture_on_commit_callbacks)
    assert [task["func"] for task in queued_tasks(broker)] == [RUN_TASK]  # popped by a worker that died

    assert services.reflection_runs_sweep() == {"rung": 0, "given_up": 0}  # not due before Q_RETRY
    run.refresh_from_db()
    due = run.retry_at
    assert services.reflection_runs_sweep(now=due) == {"rung": 1, "given_up": 0}
    assert services.reflection_runs_sweep(now=due) == {"rung": 0, "given_up": 0}  # a second sweep: taken
    assert work_off(broker) == [RUN_TASK]

    run.refresh_from_db()
    assert (run.status, run.cases_analysed, run.attempts, run.retry_at) == (ReflectionRunStatus.COMPLETED, 1, 1, None)
    assert services.reflection_runs_sweep(now=due + timedelta(days=1)) == {"rung": 0, "given_up": 0}
    # The lost task turns up after all: the run is no longer queued, nothing is redone.
    reflection_run_task(run.pk)
    run.refresh_from_db()
    assert (run.attempts, _analyses_per_case(run)) == (1, {case.pk: 1})


def test_it_takes_over_a_run_whose_worker_died_mid_chunk(redis_queue, make_case, django_capture_on_commit_callbacks):
    _, broker = redis_queue
    first, second = make_case(title="first"), make_case(title="second")
    for case in (first, second):
        add_logs(case, count=2, now=timezone.now())
    run = _queued_run(django_capture_on_commit_callbacks)
    queued_tasks(broker)
    # The worker claimed the run and its first case, wrote that case's analysis, then was killed.
    claimed = services._claim_run(run.pk)
    held = run_claims.claim([first.pk], claimed, {})
    services._analyse_chunk(held, claimed, services._Counts())
    assert reflection_run_task(run.pk)["status"] == ReflectionRunStatus.RUNNING  # a live claim: no takeover
    _started_long_ago(run)

    assert services.reflection_runs_sweep() == {"rung": 1, "given_up": 0}
    assert work_off(broker) == [RUN_TASK]

    run.refresh_from_db()
    assert (run.status, run.error, run.attempts, run.cases_skipped) == (ReflectionRunStatus.COMPLETED, "", 2, 0)
    assert _analyses_per_case(run) == {first.pk: 1, second.pk: 1}
    assert not CaseReflectionState.objects.filter(claimed_by__isnull=False).exists()


def test_it_gives_up_a_run_whose_worker_died_on_every_attempt(redis_queue, make_case, django_capture_on_commit_callbacks):
    _, broker = redis_queue
    case = make_case()
    add_logs(case, count=2, now=timezone.now())
    run = _queued_run(django_capture_on_commit_callbacks)
    queued_tasks(broker)
    run_claims.claim([case.pk], services._claim_run(run.pk), {})
    ReflectionRun.objects.filter(pk=run.pk).update(attempts=settings.Q_CLUSTER["max_attempts"])
    _started_long_ago(run)

    assert services.reflection_runs_sweep() == {"rung": 0, "given_up": 1}
    assert queued_tasks(broker) == []
    run.refresh_from_db()
    assert (run.status, run.retry_at) == (ReflectionRunStatus.FAILED, None)
    assert run.error.startswith("WorkerLost") and run.finished_at is not None
    assert not CaseReflectionState.objects.filter(claimed_by__isnull=False).exists()
    assert services.reflection_runs_sweep(now=timezone.now() + timedelta(days=1)) == {"rung": 0, "given_up": 0}


def test_it_never_takes_over_a_run_executed_in_process(redis_queue, make_case):
    _, broker = redis_queue
    run = services.reflection_run_start(requested_by="manage.py reflect", enqueue=False)
    assert services._claim_run(run.pk) is not None  # `reflect` runs it here; no worker can lose it
    ReflectionRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(days=1))

    assert services.reflection_runs_sweep(now=timezone.now() + timedelta(days=1)) == {"rung": 0, "given_up": 0}
    assert services._claim_run(run.pk) is None
    assert queued_tasks(broker) == []
