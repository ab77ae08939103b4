"""Experiment writes: start (on approval), look and act (every reflection path), promote,
roll back, change the share. One function per state change; each suggestion-visible change
writes a `SuggestionDecision` audit row in the same transaction.

Lifecycle (docs/experiments.md): running -> promoted (better; automatic, or awaiting_review
first when `EXPERIMENT_AUTO_PROMOTE` is off) | rolled_back (worse: the canary stops at once,
reviewers are told) | inconclusive (the maximum sample without a difference: the current
version stays, flagged) | superseded (the case was edited meanwhile). A reviewer may roll
back or promote by hand (with a note) at any decision point.
"""
from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from casebank.cases.services import case_rollback, case_version_promote
from casebank.models import Case, CaseVersion
from core import task_queue
from core.errors import Conflict, InvalidInput
from reflection.experiments.ramp import next_share, ramp_advance
from reflection.experiments.selectors import step_counts, version_counts
from reflection.experiments.sequential import Outcome, sequential_decision, total_counts
from reflection.models import (
    DecisionAction,
    Experiment,
    ExperimentLook,
    ExperimentStatus,
    ExperimentStep,
    Suggestion,
    SuggestionDecision,
    SuggestionStatus,
    Verification,
)

REFLECTION_ACTOR = "reflection"
MAX_NOTE = 2_000
ROLLED_BACK_TASK = "reflection.experiments.tasks.notify_experiment_rolled_back"
AWAITING_TASK = "reflection.experiments.tasks.notify_experiment_awaiting_review"
# The suggestion's verification mirrors its experiment, so lists and the dashboard read one field.
VERDICTS = {
    Outcome.CONTINUE: Verification.PENDING,
    Outcome.PROMOTE: Verification.IMPROVED,
    Outcome.ROLLBACK: Verification.REGRESSED,
    Outcome.INCONCLUSIVE: Verification.NO_CHANGE,
}


def _actor_name(user: Any) -> str:
    return (getattr(user, "get_username", lambda: "")() or REFLECTION_ACTOR)[:150]


def _audit(*, suggestion: Suggestion, action: str, from_status: str, user: Any, note: str,
           case_version: int | None) -> None:
    decision = SuggestionDecision(
        suggestion=suggestion, action=action, from_status=from_status, to_status=suggestion.status,
        actor=user if getattr(user, "pk", None) else None, actor_name=_actor_name(user), note=note[:MAX_NOTE],
        case_version=case_version,
    )
    decision.full_clean(exclude=["suggestion", "actor"])
    decision.save()


def validate_share(share: Any) -> float:
    """A candidate share is a number strictly between 0 and 1: at 0 or 1 one arm gets no runs
    and the experiment could never decide."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) or not 0 < share < 1:
        raise InvalidInput("Invalid share.", errors={"candidate_share": ["A number between 0 and 1 (exclusive)."]})
    return float(share)


def experiment_start(*, suggestion: Suggestion, candidate: CaseVersion, base_version: int,
                     share: float | None = None) -> Experiment:
    """Serve `candidate` beside `base_version` from now on (called by `suggestion_approve`, in
    its transaction), at the first share of `EXPERIMENT_RAMP` (or `share`: no ramp then). The
    base version's counts so far are stored, so the current arm counts only the runs of the
    experiment's period."""
    ramp = [float(step) for step in settings.EXPERIMENT_RAMP] if share is None else [validate_share(share)]
    share = validate_share(ramp[0])
    before = version_counts(case_id=suggestion.case_id, versions=[base_version])[base_version]
    experiment = Experiment(
        suggestion=suggestion, case_id=suggestion.case_id, base_version=base_version,
        candidate_version=candidate.version, candidate_share=share, base_runs_before=before["runs"],
        base_successes_before=before["successes"], ramp=ramp,
    )
    experiment.full_clean(exclude=["suggestion", "case"])
    experiment.save()
    _start_step(experiment, share=share, user=None, reason="The canary starts.")
    return experiment


def _start_step(experiment: Experiment, *, share: float, user: Any, reason: str) -> ExperimentStep:
    """Serve `share` from now on, and snapshot both versions' totals: the new step's own counts
    start here (the caller holds the experiment's row lock)."""
    counts = version_counts(case_id=experiment.case_id, versions=[experiment.base_version, experiment.candidate_version])
    base, candidate = counts[experiment.base_version], counts[experiment.candidate_version]
    last = ExperimentStep.objects.filter(experiment=experiment).order_by("-number").values_list("number", flat=True).first()
    step = ExperimentStep(
        experiment=experiment, number=(last or 0) + 1, share=share, started_by=_actor_name(user), reason=reason[:MAX_NOTE],
        base_runs_at_start=base["runs"], base_successes_at_start=base["successes"],
        candidate_runs_at_start=candidate["runs"], candidate_successes_at_start=candidate["successes"],
    )
    step.full_clean(exclude=["experiment"])
    step.save()
    if experiment.candidate_share != share:
        experiment.candidate_share = share
        experiment.save(update_fields=["candidate_share"])
    return step


def _last_p_value(experiment: Experiment) -> float:
    value = (experiment.detail or {}).get("p_value")
    return float(value) if isinstance(value, (int, float)) and 0 < value <= 1 else 1.0


def experiment_evaluate(*, experiment: Experiment) -> Experiment:
    """Look at a running experiment: count both arms, apply `sequential_decision`, record the
    look (when the counts moved) and act on the outcome. Safe to call as often as anyone likes:
    the rule is valid under continuous monitoring, and a decided experiment is left alone."""
    if experiment.status != ExperimentStatus.RUNNING:
        return experiment
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.status != ExperimentStatus.RUNNING:
            return locked  # another run decided it meanwhile
        case = Case.objects.defer("embedding").get(pk=locked.case_id)
        if case.version != locked.base_version:
            return _supersede(locked, case_version=case.version)
        # Counted under the lock: a step started meanwhile would split the counts differently.
        steps = step_counts(locked)
        counts = total_counts([step.counts for step in steps])
        decision = sequential_decision(
            current_runs=counts.current_runs, current_successes=counts.current_successes,
            candidate_runs=counts.candidate_runs, candidate_successes=counts.candidate_successes,
            steps=[step.counts for step in steps],
            alpha=settings.EXPERIMENT_ALPHA, min_runs_per_arm=settings.EXPERIMENT_MIN_RUNS_PER_ARM,
            max_runs_per_arm=settings.EXPERIMENT_MAX_RUNS_PER_ARM, previous_p_value=_last_p_value(locked),
        )
        detail = decision.as_dict()
        detail["current"]["successes"] = counts.current_successes
        detail["candidate"]["successes"] = counts.candidate_successes
        detail["min_runs_per_arm"] = settings.EXPERIMENT_MIN_RUNS_PER_ARM
        detail["steps"] = [{"number": step.number, "share": step.share, **vars(step.counts)} for step in steps]
        moved = (locked.detail.get("current", {}).get("runs"), locked.detail.get("candidate", {}).get("runs")) != (
            counts.current_runs, counts.candidate_runs)
        if moved or decision.outcome is not Outcome.CONTINUE:
            ExperimentLook.objects.create(
                experiment=locked, current_runs=counts.current_runs, current_successes=counts.current_successes,
                candidate_runs=counts.candidate_runs, candidate_successes=counts.candidate_successes,
                likelihood_ratio=decision.likelihood_ratio, p_value=decision.p_value, outcome=decision.outcome.value,
                step=steps[-1].number, share=locked.candidate_share,
            )
        locked.detail = detail
        suggestion = Suggestion.objects.select_for_update().get(pk=locked.suggestion_id)
        suggestion.verification = VERDICTS[decision.outcome]
        suggestion.verification_detail = detail
        suggestion.verified_at = timezone.now()
        suggestion.save(update_fields=["verification", "verification_detail", "verified_at"])
        if decision.outcome is Outcome.PROMOTE:
            if settings.EXPERIMENT_AUTO_PROMOTE:
                return _promote(locked, suggestion=suggestion, case=case, user=None,
                                note="The candidate succeeds significantly more often.")
            locked.status, locked.flagged = ExperimentStatus.AWAITING_REVIEW, True
            locked.decided_at, locked.decided_by = timezone.now(), REFLECTION_ACTOR
            task_queue.enqueue_on_commit(AWAITING_TASK, locked.pk)
        elif decision.outcome is Outcome.ROLLBACK:
            return _roll_back(locked, suggestion=suggestion, user=None,
                              note="Automatic: the candidate succeeds significantly less often.")
        elif decision.outcome is Outcome.INCONCLUSIVE:
            locked.status, locked.flagged = ExperimentStatus.INCONCLUSIVE, True
            locked.decided_at, locked.decided_by = timezone.now(), REFLECTION_ACTOR
            locked.decision_note = "Both arms reached the maximum sample without a significant difference."
        elif (share := ramp_advance(ramp=locked.ramp, share=locked.candidate_share, held=locked.ramp_held,
                                    step_candidate_runs=steps[-1].counts.candidate_runs, interval=decision.interval,
                                    min_runs=settings.EXPERIMENT_RAMP_MIN_RUNS,
                                    margin=settings.EXPERIMENT_RAMP_MARGIN)) is not None:
            low = decision.interval[0] if decision.interval else 0.0
            _start_step(locked, share=share, user=None, reason=(
                f"Automatic: {steps[-1].counts.candidate_runs} candidate runs in step {steps[-1].number}; the "
                f"always-valid interval's lower end {low:+.1%} rules out a regression beyond "
                f"{settings.EXPERIMENT_RAMP_MARGIN:.0%}."))
        locked.save()
    return locked


def _supersede(experiment: Experiment, *, case_version: int) -> Experiment:
    experiment.status = ExperimentStatus.SUPERSEDED
    experiment.decided_at, experiment.decided_by = timezone.now(), REFLECTION_ACTOR
    experiment.decision_note = f"The case moved on to version {case_version}; the candidate is no longer served."
    experiment.save()
    return experiment


def _roll_back(experiment: Experiment, *, suggestion: Suggestion, user: Any, note: str) -> Experiment:
    """Stop the canary (the current version stays; the candidate is retired) and tell reviewers.
    A promoted candidate goes back as a new version with the base version's content."""
    case_version = experiment.base_version
    if experiment.status == ExperimentStatus.PROMOTED:
        case = Case.objects.select_for_update().defer("embedding").get(pk=experiment.case_id)
        if case.version != experiment.candidate_version:
            raise Conflict(f"The case is at version {case.version}, no longer the promoted "
                           f"v{experiment.candidate_version}; roll it back from the case history instead.")
        case_version = case_rollback(case=case, to_version=experiment.base_version, actor=_actor_name(user)).version
    experiment.status, experiment.flagged = ExperimentStatus.ROLLED_BACK, False
    experiment.decided_at, experiment.decided_by, experiment.decision_note = timezone.now(), _actor_name(user), note
    experiment.save()
    from_status = suggestion.status
    suggestion.status = SuggestionStatus.ROLLED_BACK
    suggestion.rolled_back_version = case_version
    suggestion.save(update_fields=["status", "rolled_back_version"])
    _audit(suggestion=suggestion, action=DecisionAction.ROLLBACK, from_status=from_status, user=user, note=note,
           case_version=case_version)
    if user is None:
        # Lost if the broker is down (a warning is logged); the admin page shows the rollback.
        task_queue.enqueue_on_commit(ROLLED_BACK_TASK, experiment.pk)
    return experiment


def _promote(experiment: Experiment, *, suggestion: Suggestion, case: Case, user: Any, note: str) -> Experiment:
    case_version_promote(case=case, version=experiment.candidate_version, actor=_actor_name(user),
                         expected_version=experiment.base_version)
    experiment.status, experiment.flagged = ExperimentStatus.PROMOTED, False
    experiment.decided_at, experiment.decided_by, experiment.decision_note = timezone.now(), _actor_name(user), note
    experiment.save()
    from_status = suggestion.status
    suggestion.status = SuggestionStatus.APPROVED
    suggestion.applied_version = experiment.candidate_version
    suggestion.rolled_back_version = None
    suggestion.save(update_fields=["status", "applied_version", "rolled_back_version"])
    _audit(suggestion=suggestion, action=DecisionAction.PROMOTE, from_status=from_status, user=user, note=note,
           case_version=experiment.candidate_version)
    return experiment


def _clean_note(note: Any, *, required: bool) -> str:
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidInput("Invalid note.", errors={"note": [f"Text of at most {MAX_NOTE} characters."]})
    if required and not note.strip():
        raise InvalidInput("A note is required.", errors={"note": ["Say why."]})
    return note.strip()


ROLLBACK_FROM = (ExperimentStatus.RUNNING, ExperimentStatus.AWAITING_REVIEW, ExperimentStatus.INCONCLUSIVE,
                 ExperimentStatus.PROMOTED)
PROMOTE_FROM = (ExperimentStatus.AWAITING_REVIEW, ExperimentStatus.INCONCLUSIVE, ExperimentStatus.ROLLED_BACK)


@transaction.atomic
def experiment_rollback(*, experiment: Experiment, acting_user: Any, note: str) -> Experiment:
    """A reviewer stops the candidate: while running or undecided the current version simply
    stays; once promoted, the base version's content comes back as a new version."""
    note = _clean_note(note, required=True)
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status not in ROLLBACK_FROM:
        raise Conflict(f"Experiment #{locked.pk} is {locked.get_status_display().lower()}; nothing to roll back.",
                       errors={"status": [locked.status]})
    suggestion = Suggestion.objects.select_for_update().get(pk=locked.suggestion_id)
    return _roll_back(locked, suggestion=suggestion, user=acting_user, note=note)


@transaction.atomic
def experiment_promote(*, experiment: Experiment, acting_user: Any, note: str = "") -> Experiment:
    """A reviewer makes the candidate current: after "better, awaiting review", at an
    inconclusive end, or overriding an automatic rollback."""
    note = _clean_note(note, required=False)
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status not in PROMOTE_FROM:
        raise Conflict(f"Experiment #{locked.pk} is {locked.get_status_display().lower()}; it cannot be promoted now.",
                       errors={"status": [locked.status]})
    case = Case.objects.select_for_update().defer("embedding").get(pk=locked.case_id)
    if case.version != locked.base_version:
        raise Conflict(f"The case is at version {case.version}, not the experiment's base v{locked.base_version}.",
                       errors={"version": [f"Current version is {case.version}."]})
    suggestion = Suggestion.objects.select_for_update().get(pk=locked.suggestion_id)
    return _promote(locked, suggestion=suggestion, case=case, user=acting_user, note=note or "Promoted by a reviewer.")


def _lock_running(experiment: Experiment) -> Experiment:
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != ExperimentStatus.RUNNING:
        raise Conflict(f"Experiment #{locked.pk} is not running.", errors={"status": [locked.status]})
    return locked


@transaction.atomic
def experiment_set_share(*, experiment: Experiment, share: Any, acting_user: Any = None, note: Any = "") -> Experiment:
    """A person sets the canary's share (up or down): a new step starts, and the automatic ramp
    holds until resumed (`experiment_ramp_hold`). Keys already on the candidate stay there when
    the share grows (`assignment.assign_arm`)."""
    share = validate_share(share)
    note = _clean_note(note, required=False)
    locked = _lock_running(experiment)
    if share != locked.candidate_share:
        _start_step(locked, share=share, user=acting_user, reason=note or f"Share set to {share:.0%}.")
    locked.ramp_held = True
    locked.save(update_fields=["ramp_held"])
    return locked


@transaction.atomic
def experiment_ramp_advance(*, experiment: Experiment, acting_user: Any, note: Any = "") -> Experiment:
    """A person moves the canary to the ramp's next share now, whatever the ramp rule says."""
    note = _clean_note(note, required=False)
    locked = _lock_running(experiment)
    share = next_share(ramp=locked.ramp, share=locked.candidate_share)
    if share is None:
        raise Conflict(f"Experiment #{locked.pk} is at the last step of its ramp ({locked.candidate_share:.0%}).",
                       errors={"share": [f"No step above {locked.candidate_share:.0%}."]})
    _start_step(locked, share=share, user=acting_user, reason=note or f"Advanced to {share:.0%} by a reviewer.")
    return locked


@transaction.atomic
def experiment_ramp_hold(*, experiment: Experiment, held: bool) -> Experiment:
    """Hold the share where it is (no automatic step), or let the ramp rule move it again. The
    decision rule keeps running either way: a significant regression still rolls back."""
    locked = _lock_running(experiment)
    if locked.ramp_held != held:
        locked.ramp_held = held
        locked.save(update_fields=["ramp_held"])
    return locked


def experiments_evaluate_for_case(*, case_id: Any) -> int:
    """Look at the case's running experiment (every reflection path calls this)."""
    count = 0
    for experiment in Experiment.objects.filter(case_id=case_id, status=ExperimentStatus.RUNNING):
        experiment_evaluate(experiment=experiment)
        count += 1
    return count
