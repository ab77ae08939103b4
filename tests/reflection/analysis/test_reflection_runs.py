"""Batch runs: new logs only, a snapshot (logs arriving mid-run wait), no two runs on one case."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from casebank.models import CaseStatus
from reflection.analysis import services
from reflection.models import CaseAnalysis, CaseReflectionState, ReflectionRun, ReflectionRunStatus
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db


def _logs(case, **kwargs):
    now = timezone.now()
    return add_logs(case, now=now, age=kwargs.pop("age", timedelta(minutes=5)), **kwargs)


def _run(**kwargs) -> ReflectionRun:
    run = services.reflection_run_start(enqueue=False, **kwargs)
    return services.reflection_run_execute(run.pk)


def test_it_analyses_every_case_with_new_logs_then_only_those_with_newer_ones(make_case):
    first, second, idle = make_case(title="first"), make_case(title="second"), make_case(title="idle")
    _logs(first, count=3, success=True)
    _logs(second, count=1, success=False, error_type="E")

    run = _run()

    assert run.status == ReflectionRunStatus.COMPLETED
    assert (run.cases_total, run.cases_analysed, run.cases_skipped, run.warnings_set) == (2, 2, 0, 1)
    assert set(CaseAnalysis.objects.filter(run=run).values_list("case_id", flat=True)) == {first.pk, second.pk}
    second.refresh_from_db()
    assert (second.status, second.success_rate) == (CaseStatus.WARNING, 0.0)
    assert run.duration_ms is not None and run.finished_at is not None

    _logs(first, count=1, success=False, error_type="E", age=timedelta(0))
    again = _run()

    assert again.since == run.snapshot_at
    assert list(CaseAnalysis.objects.filter(run=again).values_list("case_id", "total_executions")) == [(first.pk, 4)]
    assert not CaseAnalysis.objects.filter(case=idle).exists()


def test_it_leaves_logs_arriving_mid_run_to_the_next_run(make_case, monkeypatch):
    case = make_case()
    _logs(case, count=2, success=True)
    original = services._analyse_chunk

    def arrive_then_analyse(case_ids, run, counts, **options):
        # A log ingested now is newer than the run's snapshot.
        add_logs(case, now=timezone.now(), age=timedelta(0), success=False, error_type="Late",
                 ingested_at=timezone.now())
        return original(case_ids, run, counts, **options)

    monkeypatch.setattr(services, "_analyse_chunk", arrive_then_analyse)
    run = _run()
    monkeypatch.setattr(services, "_analyse_chunk", original)

    analysis = CaseAnalysis.objects.get(run=run)
    assert (analysis.total_executions, analysis.success_rate) == (2, 1.0)

    next_run = _run()
    analysis = CaseAnalysis.objects.get(run=next_run)
    assert (analysis.total_executions, analysis.successes) == (3, 2)


def test_it_never_analyses_a_case_another_run_holds(make_case):
    held, free = make_case(title="held"), make_case(title="free")
    _logs(held, count=1)
    _logs(free, count=1)
    other = ReflectionRun.objects.create(status=ReflectionRunStatus.RUNNING, snapshot_at=timezone.now())
    CaseReflectionState.objects.create(case=held, claimed_by=other, claimed_at=timezone.now())

    run = _run()

    assert (run.cases_total, run.cases_analysed, run.cases_skipped) == (2, 1, 1)
    assert list(CaseAnalysis.objects.filter(run=run).values_list("case_id", flat=True)) == [free.pk]
    assert CaseReflectionState.objects.get(case=held).claimed_by == other  # not stolen, not released

    # The other run finishes without this case; a run that skipped cases does not move the
    # starting point, so the next run still finds `held`.
    CaseReflectionState.objects.filter(case=held).update(claimed_by=None, claimed_at=None)
    later = _run()
    assert list(CaseAnalysis.objects.filter(run=later).values_list("case_id", flat=True)) == [held.pk]


def test_it_takes_over_a_claim_left_by_a_dead_run(make_case):
    case = make_case()
    _logs(case, count=1)
    dead = ReflectionRun.objects.create(status=ReflectionRunStatus.RUNNING)
    CaseReflectionState.objects.create(case=case, claimed_by=dead, claimed_at=timezone.now() - timedelta(hours=3))

    run = _run()

    assert run.cases_analysed == 1
    state = CaseReflectionState.objects.get(case=case)
    assert (state.claimed_by, state.analysed_through) == (None, run.snapshot_at)


def test_it_executes_a_run_only_once(make_case):
    case = make_case()
    _logs(case, count=1)
    run = services.reflection_run_start(enqueue=False)
    services.reflection_run_execute(run.pk)
    again = services.reflection_run_execute(run.pk)
    assert again.status == ReflectionRunStatus.COMPLETED
    assert CaseAnalysis.objects.filter(run=run).count() == 1


def test_it_can_limit_a_run_to_given_cases(make_case):
    chosen, other = make_case(title="chosen"), make_case(title="other")
    _logs(chosen, count=1)
    _logs(other, count=1)
    run = _run(case_ids=[chosen.pk])
    assert list(CaseAnalysis.objects.filter(run=run).values_list("case_id", flat=True)) == [chosen.pk]


def test_a_run_limited_to_some_cases_does_not_hide_new_logs_of_others(make_case):
    early, other = make_case(title="early"), make_case(title="other")
    _logs(early, count=1)
    _logs(other, count=1)
    _run(case_ids=[early.pk])

    full = _run()

    # `early` was analysed through the limited run's snapshot; only `other` is still new.
    assert list(CaseAnalysis.objects.filter(run=full).values_list("case_id", flat=True)) == [other.pk]


def test_the_per_case_step_analyses_a_case_on_its_own(make_case):
    case = make_case()
    _logs(case, count=1, success=False, error_type="E")
    run = ReflectionRun.objects.create(status=ReflectionRunStatus.RUNNING, snapshot_at=timezone.now())

    services._analyse_one(case.pk, run)

    analysis = CaseAnalysis.objects.get(run=run)
    assert (analysis.total_executions, analysis.success_rate) == (1, 0.0)
    case.refresh_from_db()
    assert case.status == CaseStatus.WARNING
