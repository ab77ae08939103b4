"""Reviewers' decisions on experiments: rollback needs a note, promote overrides an automatic
rollback, the share is validated, and every decision is audited on the suggestion."""
from __future__ import annotations

import math

import pytest

from casebank.models import Case
from core.errors import Conflict, InvalidInput
from reflection.experiments.services import experiment_promote, experiment_rollback, experiment_set_share
from reflection.models import DecisionAction, ExperimentStatus, SuggestionStatus
from tests.reflection.experiments.support import approved_experiment, suggestion_of

pytestmark = pytest.mark.django_db


def test_a_manual_rollback_needs_a_note_and_is_audited(make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    with pytest.raises(InvalidInput):
        experiment_rollback(experiment=experiment, acting_user=reviewer, note="  ")

    done = experiment_rollback(experiment=experiment, acting_user=reviewer, note="customers complained")

    assert (done.status, done.decided_by, done.decision_note) == (ExperimentStatus.ROLLED_BACK, "reviewer",
                                                                   "customers complained")
    suggestion = suggestion_of(done)
    assert suggestion.status == SuggestionStatus.ROLLED_BACK
    decision = suggestion.decisions.first()
    assert (decision.action, decision.note, decision.actor_name) == (DecisionAction.ROLLBACK, "customers complained",
                                                                     "reviewer")
    with pytest.raises(Conflict):
        experiment_rollback(experiment=done, acting_user=reviewer, note="again")


def test_promote_overrides_a_rollback_in_one_step(make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    experiment_rollback(experiment=experiment, acting_user=reviewer, note="too early")

    promoted = experiment_promote(experiment=experiment, acting_user=reviewer, note="override")

    assert promoted.status == ExperimentStatus.PROMOTED
    assert Case.objects.get(pk=experiment.case_id).version == 2
    suggestion = suggestion_of(promoted)
    assert (suggestion.status, suggestion.applied_version, suggestion.rolled_back_version) == (
        SuggestionStatus.APPROVED, 2, None)


def test_a_running_experiment_is_not_promoted_by_hand(make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    with pytest.raises(Conflict):
        experiment_promote(experiment=experiment, acting_user=reviewer)


def test_rolling_back_a_promoted_candidate_brings_the_base_content_back_as_a_new_version(make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    experiment_rollback(experiment=experiment, acting_user=reviewer, note="x")
    experiment_promote(experiment=experiment, acting_user=reviewer)

    undone = experiment_rollback(experiment=experiment, acting_user=reviewer, note="worse in production")

    case = Case.objects.get(pk=experiment.case_id)
    assert case.version == 3 and case.plan == suggestion_of(undone).current_plan
    assert suggestion_of(undone).rolled_back_version == 3


@pytest.mark.parametrize("share", [0, 1, -0.1, 1.5, math.nan, math.inf, True, "0.5", None])
def test_a_share_outside_0_1_or_not_a_number_is_refused(make_case, reviewer, share):
    experiment = approved_experiment(make_case, reviewer)
    with pytest.raises(InvalidInput) as refused:
        experiment_set_share(experiment=experiment, share=share)
    assert "candidate_share" in refused.value.errors


def test_ramping_the_share_keeps_candidate_keys_on_the_candidate(make_case, reviewer):
    from reflection.experiments.selectors import resolve_plan
    from tests.reflection.experiments.support import keys

    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    before = {k for k in keys(500) if resolve_plan(case=case, key=k).arm == "candidate"}

    experiment_set_share(experiment=experiment, share=0.5)

    after = {k for k in keys(500) if resolve_plan(case=case, key=k).arm == "candidate"}
    assert before < after and abs(len(after) / 500 - 0.5) < 0.06


def test_a_second_approval_on_a_case_under_experiment_is_refused(make_case, reviewer):
    from reflection.suggestions.services import suggestion_approve
    from tests.reflection.suggestion_helpers import make_suggestion

    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    other = make_suggestion(case, revised_plan=[{"agent": "report", "action": "something else"}])
    with pytest.raises(Conflict):
        suggestion_approve(suggestion=other, acting_user=reviewer)


@pytest.mark.parametrize("ramp", ["1.5", "0", "1", "-0.2", "0.5,0.2", "0.2,0.2", "nan", "0.2,x", ""])
def test_settings_refuse_a_ramp_that_is_not_increasing_shares_in_0_1(ramp):
    loaded = _load_settings(EXPERIMENT_RAMP=ramp)
    assert loaded.returncode != 0
    assert "EXPERIMENT_RAMP" in loaded.stderr


def test_settings_name_the_replacement_of_the_old_share_setting():
    loaded = _load_settings(EXPERIMENT_CANDIDATE_SHARE="0.3")
    assert loaded.returncode != 0 and "replaced by EXPERIMENT_RAMP" in loaded.stderr


def _load_settings(**variables: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, **variables}
    return subprocess.run([sys.executable, "-c", "import config.settings"], env=env, capture_output=True, text=True)
