"""End to end (issue #15): approve -> canary split within 3 points of the setting over 2,000
assignments -> runs on both arms -> promote; and -> regression -> automatic rollback with the
reviewers told. Runs go in through `POST /api/logs/`, decisions come from `reflect --case`."""
from __future__ import annotations

import pytest
from django.core import mail
from django.core.management import call_command

from casebank.models import Case, CaseVersion
from reflection.experiments.selectors import resolve_plan
from reflection.models import Experiment, ExperimentLook, ExperimentStatus, SuggestionStatus, Verification
from tests.reflection.experiments.support import approved_experiment, keys, send_runs, suggestion_of
from tests.reflection.suggestion_helpers import PLAN, REVISED

pytestmark = pytest.mark.django_db


def _reflect(experiment: Experiment) -> Experiment:
    call_command("reflect", "--case", str(experiment.case_id))
    return Experiment.objects.get(pk=experiment.pk)


def test_approving_makes_a_candidate_version_without_making_it_current(make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)

    case = Case.objects.get(pk=experiment.case_id)
    assert (case.version, case.plan) == (1, PLAN)
    assert (experiment.base_version, experiment.candidate_version, experiment.candidate_share) == (1, 2, 0.2)
    assert CaseVersion.objects.get(case=case, version=2).plan == REVISED
    assert experiment.status == ExperimentStatus.RUNNING
    assert suggestion_of(experiment).status == SuggestionStatus.APPROVED
    assert suggestion_of(experiment).verification == Verification.PENDING


@pytest.mark.parametrize("share", [0.2, 0.5])
def test_the_canary_gets_its_share_of_2000_assignments_within_3_points(make_case, reviewer, settings, share):
    settings.EXPERIMENT_RAMP = (share,)
    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)

    served = [resolve_plan(case=case, key=key) for key in keys(2_000)]

    candidate = [plan for plan in served if plan.arm == "candidate"]
    assert abs(len(candidate) / 2_000 - share) <= 0.03
    assert {plan.version for plan in candidate} == {2} and all(plan.plan == REVISED for plan in candidate)
    assert {(plan.version, plan.arm) for plan in served if plan not in candidate} == {(1, "current")}
    # Deterministic: the same key, the same arm.
    assert [resolve_plan(case=case, key=key).arm for key in keys(50)] == [plan.arm for plan in served[:50]]


def test_a_better_candidate_is_promoted_after_runs_on_both_arms(make_case, reviewer, api):
    experiment = approved_experiment(make_case, reviewer)
    seen = send_runs(api, experiment, keys=keys(2_000), current_rate=0.4, candidate_rate=0.7)
    assert seen["candidate"] >= 340 and seen["current"] >= 1_500

    experiment = _reflect(experiment)

    assert experiment.status == ExperimentStatus.PROMOTED
    assert experiment.decided_at is not None and experiment.decided_by == "reflection"
    assert experiment.detail["outcome"] == "promote"
    assert experiment.detail["candidate"]["runs"] == seen["candidate"]
    assert experiment.detail["current"]["runs"] == seen["current"]
    case = Case.objects.get(pk=experiment.case_id)
    assert (case.version, case.plan) == (2, REVISED)
    suggestion = suggestion_of(experiment)
    assert (suggestion.status, suggestion.applied_version, suggestion.verification) == (
        SuggestionStatus.APPROVED, 2, Verification.IMPROVED)
    assert ExperimentLook.objects.filter(experiment=experiment).count() == 1
    # Everyone runs the promoted version now.
    assert {resolve_plan(case=case, key=key).version for key in keys(100)} == {2}


def test_a_regression_stops_the_canary_and_tells_the_reviewers(make_case, reviewer, api, django_user_model,
                                                               django_capture_on_commit_callbacks):
    django_user_model.objects.create_superuser("boss", email="boss@example.com", password="pw")
    experiment = approved_experiment(make_case, reviewer)
    send_runs(api, experiment, keys=keys(2_000), current_rate=0.6, candidate_rate=0.3)

    with django_capture_on_commit_callbacks(execute=True):
        experiment = _reflect(experiment)

    assert experiment.status == ExperimentStatus.ROLLED_BACK
    assert experiment.detail["outcome"] == "rollback"
    case = Case.objects.get(pk=experiment.case_id)
    assert (case.version, case.plan) == (1, PLAN)
    assert {resolve_plan(case=case, key=key).version for key in keys(200)} == {1}
    suggestion = suggestion_of(experiment)
    assert suggestion.status == SuggestionStatus.ROLLED_BACK
    assert suggestion.get_status_display() == "Rolled back"
    assert suggestion.verification == Verification.REGRESSED
    [alert] = [m for m in mail.outbox if "Canary stopped" in m.subject]
    assert "boss@example.com" in alert.to
    assert f"/admin/reflection/experiment/{experiment.pk}/change/" in alert.body


def test_with_auto_promotion_off_a_better_candidate_awaits_a_reviewer(make_case, reviewer, api, settings):
    settings.EXPERIMENT_AUTO_PROMOTE = False
    experiment = approved_experiment(make_case, reviewer)
    send_runs(api, experiment, keys=keys(2_000), current_rate=0.4, candidate_rate=0.7)

    experiment = _reflect(experiment)

    assert (experiment.status, experiment.flagged) == (ExperimentStatus.AWAITING_REVIEW, True)
    assert Case.objects.get(pk=experiment.case_id).version == 1
    from reflection.experiments.services import experiment_promote

    promoted = experiment_promote(experiment=experiment, acting_user=reviewer, note="looks right")
    assert promoted.status == ExperimentStatus.PROMOTED
    assert Case.objects.get(pk=experiment.case_id).version == 2


def test_no_decision_before_the_minimum_sample(make_case, reviewer, api):
    experiment = approved_experiment(make_case, reviewer)
    send_runs(api, experiment, keys=keys(300), current_rate=0.4, candidate_rate=0.9)  # ~60 candidate runs

    experiment = _reflect(experiment)

    assert experiment.status == ExperimentStatus.RUNNING
    assert experiment.detail["outcome"] == "continue"
    assert suggestion_of(experiment).verification == Verification.PENDING


def test_an_inconclusive_experiment_at_the_maximum_keeps_the_current_version_flagged(make_case, reviewer, api, settings):
    settings.EXPERIMENT_MAX_RUNS_PER_ARM = 150
    settings.EXPERIMENT_RAMP = (0.5,)
    experiment = approved_experiment(make_case, reviewer)
    send_runs(api, experiment, keys=keys(400), current_rate=0.5, candidate_rate=0.5)

    experiment = _reflect(experiment)

    assert (experiment.status, experiment.flagged) == (ExperimentStatus.INCONCLUSIVE, True)
    assert Case.objects.get(pk=experiment.case_id).version == 1
    assert suggestion_of(experiment).verification == Verification.NO_CHANGE


def test_an_edit_of_the_case_during_the_experiment_supersedes_it(make_case, reviewer):
    from casebank.cases.services import case_update

    experiment = approved_experiment(make_case, reviewer)
    case = case_update(case=Case.objects.get(pk=experiment.case_id), actor="editor",
                       plan=[{"agent": "data_analysis", "action": "by hand"}])
    assert case.version == 3  # past the candidate's v2: numbers never repeat

    experiment = _reflect(experiment)

    assert experiment.status == ExperimentStatus.SUPERSEDED
    assert resolve_plan(case=case, key="anyone").version == 3
