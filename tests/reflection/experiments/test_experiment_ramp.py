"""The canary's ramp (EXPERIMENT_RAMP): steps advance at a look by the ramp rule, reviewers
advance, hold or set the share, every step snapshots both versions' counts so the decision
compares the arms within each step (drift during a ramp is no regression), and the steps
survive `purge_logs`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command

from core.errors import Conflict
from reflection.experiments.selectors import step_counts
from reflection.experiments.services import (
    experiment_evaluate,
    experiment_ramp_advance,
    experiment_ramp_hold,
    experiment_set_share,
)
from reflection.models import ExecutionLog, Experiment, ExperimentStatus, ExperimentStep
from tests.reflection.experiments.support import approved_experiment, backdated_runs

pytestmark = pytest.mark.django_db


def _runs(experiment: Experiment, *, current: tuple[int, int], candidate: tuple[int, int], age=timedelta(hours=1)):
    backdated_runs(experiment.case_id, version=experiment.base_version, runs=current[0], successes=current[1], age=age)
    backdated_runs(experiment.case_id, version=experiment.candidate_version, runs=candidate[0], successes=candidate[1],
                   age=age)


def _shares(experiment: Experiment) -> list[float]:
    return list(ExperimentStep.objects.filter(experiment=experiment).order_by("number").values_list("share", flat=True))


def test_an_experiment_starts_at_the_first_share_of_the_ramp(make_case, reviewer, settings):
    settings.EXPERIMENT_RAMP = (0.05, 0.2, 0.5)
    experiment = approved_experiment(make_case, reviewer)
    assert (experiment.candidate_share, experiment.ramp, experiment.ramp_held) == (0.05, [0.05, 0.2, 0.5], False)
    step = ExperimentStep.objects.get(experiment=experiment)
    assert (step.number, step.share, step.started_by) == (1, 0.05, "reflection")


def test_a_step_advances_once_the_candidate_has_its_runs_and_no_regression_beyond_the_margin(make_case, reviewer,
                                                                                            settings):
    settings.EXPERIMENT_RAMP, settings.EXPERIMENT_RAMP_MIN_RUNS, settings.EXPERIMENT_RAMP_MARGIN = (0.2, 0.5), 100, 0.1
    experiment = approved_experiment(make_case, reviewer)
    _runs(experiment, current=(396, 198), candidate=(99, 60))  # better, but one run short of the minimum
    experiment = experiment_evaluate(experiment=experiment)
    assert (experiment.candidate_share, _shares(experiment)) == (0.2, [0.2])

    _runs(experiment, current=(4, 2), candidate=(1, 1))
    experiment = experiment_evaluate(experiment=experiment)

    assert experiment.status == ExperimentStatus.RUNNING
    assert (experiment.candidate_share, _shares(experiment)) == (0.5, [0.2, 0.5])
    step = ExperimentStep.objects.get(experiment=experiment, number=2)
    assert step.started_by == "reflection" and "rules out a regression beyond 10%" in step.reason
    assert (step.base_runs_at_start, step.candidate_runs_at_start) == (400, 100)
    # The next look counts the new step from zero.
    assert [s.counts.candidate_runs for s in step_counts(experiment)] == [100, 0]


def test_a_step_holds_while_the_interval_allows_a_regression_beyond_the_margin(make_case, reviewer, settings):
    settings.EXPERIMENT_RAMP, settings.EXPERIMENT_RAMP_MARGIN = (0.2, 0.5), 0.1
    experiment = approved_experiment(make_case, reviewer)
    _runs(experiment, current=(400, 200), candidate=(100, 45))  # 5 points worse: far from significant
    experiment = experiment_evaluate(experiment=experiment)
    assert experiment.status == ExperimentStatus.RUNNING
    assert experiment.detail["interval"][0] < -0.1
    assert _shares(experiment) == [0.2]


def test_a_held_ramp_does_not_advance_and_a_regression_still_rolls_back(make_case, reviewer, settings):
    settings.EXPERIMENT_RAMP = (0.2, 0.5)
    experiment = approved_experiment(make_case, reviewer)
    experiment_ramp_hold(experiment=experiment, held=True)
    _runs(experiment, current=(400, 200), candidate=(100, 60))
    experiment = experiment_evaluate(experiment=experiment)
    assert _shares(experiment) == [0.2] and experiment.ramp_held

    experiment_ramp_hold(experiment=experiment, held=False)
    _runs(experiment, current=(400, 300), candidate=(400, 100))
    experiment = experiment_evaluate(experiment=experiment)
    assert experiment.status == ExperimentStatus.ROLLED_BACK


def test_a_reviewer_advances_and_sets_the_share_and_the_ramp_holds_after_a_set(make_case, reviewer, settings):
    settings.EXPERIMENT_RAMP = (0.2, 0.5)
    experiment = approved_experiment(make_case, reviewer)
    experiment = experiment_ramp_advance(experiment=experiment, acting_user=reviewer, note="looks fine")
    assert experiment.candidate_share == 0.5
    with pytest.raises(Conflict):
        experiment_ramp_advance(experiment=experiment, acting_user=reviewer)

    experiment = experiment_set_share(experiment=experiment, share=0.1, acting_user=reviewer, note="calmer")

    assert (experiment.candidate_share, experiment.ramp_held) == (0.1, True)
    steps = list(ExperimentStep.objects.filter(experiment=experiment).order_by("number"))
    assert [(s.share, s.started_by, s.reason) for s in steps[1:]] == [(0.5, "reviewer", "looks fine"),
                                                                      (0.1, "reviewer", "calmer")]


def test_ramp_controls_refuse_a_decided_experiment(make_case, reviewer):
    from reflection.experiments.services import experiment_rollback

    experiment = approved_experiment(make_case, reviewer)
    experiment_rollback(experiment=experiment, acting_user=reviewer, note="no")
    for control in (lambda: experiment_ramp_advance(experiment=experiment, acting_user=reviewer),
                    lambda: experiment_ramp_hold(experiment=experiment, held=True),
                    lambda: experiment_set_share(experiment=experiment, share=0.3)):
        with pytest.raises(Conflict):
            control()


def test_drift_during_a_ramp_is_not_a_regression(make_case, reviewer, settings):
    """Both versions succeed 60 % of the time at a 20 % share, then 40 % at 50 %: pooled, the
    candidate would read 46.7 % against 53.3 % and be rolled back."""
    settings.EXPERIMENT_RAMP = (0.2, 0.5)
    experiment = approved_experiment(make_case, reviewer)
    _runs(experiment, current=(1600, 960), candidate=(400, 240))
    experiment = experiment_evaluate(experiment=experiment)
    assert experiment.candidate_share == 0.5
    _runs(experiment, current=(800, 320), candidate=(800, 320))

    experiment = experiment_evaluate(experiment=experiment)

    assert experiment.status == ExperimentStatus.RUNNING
    assert experiment.detail["candidate"]["success_rate"] < experiment.detail["current"]["success_rate"] - 0.06
    assert experiment.detail["difference"] == pytest.approx(0.0, abs=1e-9)
    assert [s["share"] for s in experiment.detail["steps"]] == [0.2, 0.5]


def test_step_counts_survive_purge_logs(make_case, reviewer, settings):
    settings.EXPERIMENT_RAMP = (0.2, 0.5)
    experiment = approved_experiment(make_case, reviewer)
    _runs(experiment, current=(400, 240), candidate=(100, 60), age=timedelta(days=45))
    experiment = experiment_ramp_advance(experiment=experiment, acting_user=reviewer)
    _runs(experiment, current=(300, 150), candidate=(300, 160), age=timedelta(days=40))
    before = [s.counts for s in step_counts(experiment)]

    call_command("purge_logs")

    assert not ExecutionLog.objects.filter(case_id=experiment.case_id).exists()
    assert [s.counts for s in step_counts(Experiment.objects.get(pk=experiment.pk))] == before
    assert [(c.current_runs, c.candidate_successes) for c in before] == [(400, 60), (300, 160)]
