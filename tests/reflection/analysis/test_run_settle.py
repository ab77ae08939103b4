"""Runs and late commits: the settle lag, and no case analysed by two runs.

`ingested_at` is stamped before the ingesting transaction commits. A run that snapshotted at
"now" could scan before such a log committed and the next run start after it, so the log was
never analysed. Full runs now snapshot `REFLECTION_INGEST_SETTLE_SECONDS` ago, a point before
which every stamped log has committed (reflection.ingestion bounds the gap).
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from reflection.analysis import run_claims, services
from reflection.logs.services import logs_ingest, parse_batch
from reflection.models import CaseAnalysis, CaseReflectionState, ExecutionLog, ReflectionRun
from tests.reflection.factories import add_logs

on_postgres_only = pytest.mark.postgres(reason="needs concurrent transactions")


def _run(**kwargs) -> ReflectionRun:
    run = services.reflection_run_start(enqueue=False, **kwargs)
    return services.reflection_run_execute(run.pk)


def _analysed(run: ReflectionRun) -> dict:
    return dict(CaseAnalysis.objects.filter(run=run).values_list("case_id", "total_executions"))


@pytest.mark.django_db
def test_a_full_run_leaves_the_last_settle_seconds_to_the_next_run(make_case, settings):
    settings.REFLECTION_INGEST_SETTLE_SECONDS = 60
    settled, recent = make_case(title="settled"), make_case(title="recent")
    now = timezone.now()
    add_logs(settled, now=now, age=timedelta(seconds=90))
    add_logs(recent, now=now, age=timedelta(seconds=30))

    run = _run()

    assert abs((run.snapshot_at - (now - timedelta(seconds=60))).total_seconds()) < 5
    assert _analysed(run) == {settled.pk: 1}


@pytest.mark.django_db
def test_a_run_for_given_cases_takes_everything_but_records_only_the_settled_part(make_case, settings):
    settings.REFLECTION_INGEST_SETTLE_SECONDS = 60
    case = make_case()
    add_logs(case, now=timezone.now(), age=timedelta(seconds=5))

    run = _run(case_ids=[case.pk])

    assert _analysed(run) == {case.pk: 1}
    state = CaseReflectionState.objects.get(case=case)
    assert state.analysed_through == run.snapshot_at - timedelta(seconds=60)


@pytest.mark.django_db(transaction=True)
@on_postgres_only
def test_a_log_committed_after_a_runs_scan_is_analysed_by_the_next_run(make_case, settings):
    settings.REFLECTION_INGEST_SETTLE_SECONDS = 2
    case = make_case()
    ingested, release = threading.Event(), threading.Event()

    def ingest_then_commit_late() -> None:
        try:
            with transaction.atomic():
                logs_ingest(records=parse_batch([{"case_id": str(case.pk), "success": False, "execution_time_ms": 9}]))
                ingested.set()
                release.wait(10)
        finally:
            connections.close_all()

    writer = threading.Thread(target=ingest_then_commit_late)
    writer.start()
    try:
        assert ingested.wait(10)
        first = _run()  # scans while the log is stamped but not committed
    finally:
        release.set()
        writer.join()
    stamped = ExecutionLog.objects.get().ingested_at

    time.sleep(max(0.0, (stamped + timedelta(seconds=2.1) - timezone.now()).total_seconds()))
    second = _run()

    # The first run's snapshot stayed behind the uncommitted log; the next run took it.
    assert (_analysed(first), _analysed(second)) == ({}, {case.pk: 1})
    assert first.snapshot_at < stamped <= second.snapshot_at and second.since == first.snapshot_at


@pytest.mark.django_db
def test_a_run_leaves_a_case_another_run_analysed_after_its_scan(make_case, monkeypatch):
    cases = [make_case(title=f"case {i}") for i in range(3)]
    for case in cases:
        add_logs(case, now=timezone.now(), age=timedelta(minutes=5))
    first = services.reflection_run_start(enqueue=False)
    second = services.reflection_run_start(enqueue=False)
    scan = run_claims.candidate_cases

    def scan_then_let_the_first_run_finish(run):
        found = scan(run)
        if run.pk == second.pk:
            services.reflection_run_execute(first.pk)
        return found

    monkeypatch.setattr(run_claims, "candidate_cases", scan_then_let_the_first_run_finish)
    second = services.reflection_run_execute(second.pk)
    first.refresh_from_db()

    assert _analysed(first) == {case.pk: 1 for case in cases}
    assert _analysed(second) == {}
    assert (second.cases_total, second.cases_skipped) == (3, 3)
    # Every case is analysed once, and the watermark is the first run's.
    assert CaseAnalysis.objects.count() == 3
    assert set(CaseReflectionState.objects.values_list("analysed_through", flat=True)) == {first.snapshot_at}


@pytest.mark.django_db(transaction=True)
@on_postgres_only
def test_two_runs_started_together_never_analyse_the_same_case(make_case):
    cases = [make_case(title=f"case {i}") for i in range(40)]
    for case in cases:
        add_logs(case, now=timezone.now(), age=timedelta(minutes=5), count=3)
    runs = [services.reflection_run_start(enqueue=False) for _ in range(2)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def execute(run_id: int) -> None:
        try:
            start.wait(10)
            services.reflection_run_execute(run_id)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=execute, args=(run.pk,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    analysed = list(CaseAnalysis.objects.filter(run__in=runs).values_list("case_id", flat=True))
    assert sorted(analysed) == sorted(case.pk for case in cases)  # each exactly once
    assert all(run.status == "completed" for run in ReflectionRun.objects.filter(pk__in=[r.pk for r in runs]))


@pytest.mark.django_db
@on_postgres_only
def test_ingestion_bounds_its_statements_and_leaves_the_callers_timeout(make_case):
    case = make_case()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '7min'")
        before = timezone.now()
        logs_ingest(records=parse_batch([{"case_id": str(case.pk), "success": True, "execution_time_ms": 1}]))
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "7min"
    # Stamped by the INSERT, inside the transaction (the test's), not before it.
    assert ExecutionLog.objects.get().ingested_at >= before
