"""An experiment's counts, and so its verdict, survive `purge_logs` (issue #15): roll-ups keep
per-version counts, and the current arm is the base version's total less its count at the
start."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command

from reflection.experiments.services import experiment_evaluate
from reflection.models import ExecutionLog, Experiment, ExperimentStatus
from tests.reflection.experiments.support import approved_experiment, backdated_runs

pytestmark = pytest.mark.django_db


def test_the_verdict_is_unchanged_after_purge_logs_deletes_the_base_versions_raw_logs(make_case, reviewer):
    case = make_case()
    backdated_runs(case.pk, version=1, runs=200, successes=180, age=timedelta(days=50))  # before the experiment
    from reflection.suggestions.services import suggestion_approve
    from tests.reflection.suggestion_helpers import make_suggestion

    suggestion = suggestion_approve(suggestion=make_suggestion(case), acting_user=reviewer)
    experiment = Experiment.objects.get(suggestion=suggestion)
    assert (experiment.base_runs_before, experiment.base_successes_before) == (200, 180)
    backdated_runs(case.pk, version=1, runs=400, successes=240, age=timedelta(days=40))  # 60 %
    backdated_runs(case.pk, version=2, runs=150, successes=45, age=timedelta(days=40))  # 30 %
    decided = experiment_evaluate(experiment=experiment)
    assert decided.status == ExperimentStatus.ROLLED_BACK
    counts = {arm: decided.detail[arm] for arm in ("current", "candidate")}
    assert counts["current"]["runs"] == 400 and counts["candidate"]["runs"] == 150

    call_command("purge_logs")

    assert not ExecutionLog.objects.filter(case=case, case_version=1).exists()
    # Looked at again from the roll-ups alone: the same counts, the same statistic and outcome.
    from reflection.experiments.selectors import arm_counts

    again = arm_counts(Experiment.objects.get(pk=experiment.pk))
    assert (again.current_runs, again.current_successes, again.candidate_runs, again.candidate_successes) == (
        400, 240, 150, 45)


def test_a_running_experiments_next_look_reads_the_same_counts_after_the_purge(make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    backdated_runs(experiment.case_id, version=1, runs=60, successes=30, age=timedelta(days=40))
    backdated_runs(experiment.case_id, version=2, runs=40, successes=24, age=timedelta(days=40))
    before = experiment_evaluate(experiment=experiment)
    assert before.status == ExperimentStatus.RUNNING

    call_command("purge_logs")
    assert not ExecutionLog.objects.filter(case_id=experiment.case_id).exists()
    backdated_runs(experiment.case_id, version=1, runs=1, successes=1, age=timedelta(hours=1))
    after = experiment_evaluate(experiment=before)

    assert after.detail["current"]["runs"] == 61 and after.detail["candidate"]["runs"] == 40
    assert after.detail["candidate"]["success_rate"] == before.detail["candidate"]["success_rate"]
