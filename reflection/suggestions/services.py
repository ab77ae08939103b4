"""Decisions on suggestions (approve, reject, stale, rollback) and the verification of applied ones.

Every decision writes a `SuggestionDecision` audit row in the same transaction. Approving
starts an experiment (`EXPERIMENTS_ENABLED`, the default): the revised plan becomes a candidate
case version served beside the current one to a share of traffic, and the sequential rule
decides (`reflection.experiments`). With experiments off, approving applies the revised plan
as the new current version and verification compares before with after (a fixed z-test, not
valid under repeated looks: docs/experiments.md). Either way the case must still be at
`base_version`, so a case edited since the suggestion was made is never overwritten: the
suggestion is marked stale instead, and says why.
"""
from __future__ import annotations

import math
from typing import Any, NotRequired, TypedDict

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from casebank.cases.services import case_rollback, case_update, case_version_propose
from casebank.models import Case
from core import task_queue
from core.errors import Conflict, InvalidInput
from reflection.experiments import services as experiment_services
from reflection.experiments.selectors import version_counts
from reflection.models import (
    DecisionAction,
    Experiment,
    ExperimentStatus,
    Suggestion,
    SuggestionDecision,
    SuggestionStatus,
    Verification,
)

# Two-sided test at 5 %: |z| >= 1.96 is a real difference.
Z_CRITICAL = 1.959964
MAX_NOTE = 2_000


def min_runs_per_side() -> int:
    return int(settings.VERIFICATION_MIN_RUNS)


def _actor_name(user: Any) -> str:
    return (getattr(user, "get_username", lambda: "")() or "system")[:150]


def _audit(*, suggestion: Suggestion, action: str, from_status: str, user: Any, note: str = "",
           case_version: int | None = None) -> SuggestionDecision:
    decision = SuggestionDecision(
        suggestion=suggestion,
        action=action,
        from_status=from_status,
        to_status=suggestion.status,
        actor=user if getattr(user, "pk", None) else None,
        actor_name=_actor_name(user),
        note=note,
        case_version=case_version,
    )
    decision.full_clean(exclude=["suggestion", "actor"])
    decision.save()
    return decision


def _locked_pending(suggestion: Suggestion) -> Suggestion:
    locked = Suggestion.objects.select_for_update().get(pk=suggestion.pk)
    if locked.status != SuggestionStatus.PENDING:
        raise Conflict(
            f"Suggestion #{locked.pk} is {locked.status}, not pending.",
            errors={"status": [f"Already {locked.status}."]},
        )
    return locked


def _clean_note(note: str) -> str:
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidInput("Invalid note.", errors={"note": [f"Text of at most {MAX_NOTE} characters."]})
    return note.strip()


@transaction.atomic
def suggestion_approve(*, suggestion: Suggestion, acting_user: Any, note: str = "") -> Suggestion:
    """Apply the revised plan as a new case version, or mark the suggestion stale.

    Returns the suggestion: `approved` with `applied_version`, or `stale` with `stale_reason`
    when the case changed since `base_version`. Raises `Conflict` when it is not pending.
    """
    note = _clean_note(note)
    locked = _locked_pending(suggestion)
    case = Case.objects.defer("embedding").get(pk=locked.case_id)
    if settings.EXPERIMENTS_ENABLED:
        return _approve_as_experiment(locked, case=case, acting_user=acting_user, note=note)
    try:
        # A savepoint: a stale case leaves nothing behind but the stale mark below.
        with transaction.atomic():
            updated = case_update(
                case=case,
                actor=_actor_name(acting_user),
                reason=f"suggestion #{locked.pk}",
                expected_version=locked.base_version,
                plan=locked.revised_plan,
            )
    except Conflict as exc:
        return suggestion_mark_stale(suggestion=locked, reason=exc.message, acting_user=acting_user, note=note)
    if updated.version == locked.base_version:
        # The revised plan equals the current one: nothing to apply, nothing to verify.
        raise Conflict(f"Suggestion #{locked.pk} does not change the plan.", errors={"revised_plan": ["Same as the current plan."]})
    locked.status = SuggestionStatus.APPROVED
    locked.reviewed_by = acting_user if getattr(acting_user, "pk", None) else None
    locked.reviewed_at = timezone.now()
    locked.review_note = note
    locked.applied_version = updated.version
    locked.verification = Verification.PENDING
    locked.full_clean(exclude=["case", "reviewed_by"])
    locked.save()
    _audit(suggestion=locked, action=DecisionAction.APPROVE, from_status=SuggestionStatus.PENDING,
           user=acting_user, note=note, case_version=updated.version)
    _forget_verifying()
    return locked


def _approve_as_experiment(locked: Suggestion, *, case: Case, acting_user: Any, note: str) -> Suggestion:
    if Experiment.objects.filter(case_id=case.pk, status=ExperimentStatus.RUNNING).exists():
        raise Conflict(f"An experiment already runs on this case; decide it before approving suggestion #{locked.pk}.",
                       errors={"case": ["An experiment is running."]})
    if locked.revised_plan == case.plan:
        raise Conflict(f"Suggestion #{locked.pk} does not change the plan.", errors={"revised_plan": ["Same as the current plan."]})
    try:
        with transaction.atomic():
            candidate = case_version_propose(case=case, actor=_actor_name(acting_user), reason=f"suggestion #{locked.pk} (candidate)",
                                             expected_version=locked.base_version, plan=locked.revised_plan)
    except Conflict as exc:
        return suggestion_mark_stale(suggestion=locked, reason=exc.message, acting_user=acting_user, note=note)
    locked.status = SuggestionStatus.APPROVED
    locked.reviewed_by = acting_user if getattr(acting_user, "pk", None) else None
    locked.reviewed_at = timezone.now()
    locked.review_note = note
    locked.verification = Verification.PENDING
    locked.full_clean(exclude=["case", "reviewed_by"])
    locked.save()
    experiment_services.experiment_start(suggestion=locked, candidate=candidate, base_version=locked.base_version)
    _audit(suggestion=locked, action=DecisionAction.APPROVE, from_status=SuggestionStatus.PENDING,
           user=acting_user, note=note or f"experiment: v{candidate.version} on a canary", case_version=case.version)
    _forget_verifying()
    return locked


@transaction.atomic
def suggestion_reject(*, suggestion: Suggestion, acting_user: Any, note: str = "") -> Suggestion:
    note = _clean_note(note)
    locked = _locked_pending(suggestion)
    locked.status = SuggestionStatus.REJECTED
    locked.reviewed_by = acting_user if getattr(acting_user, "pk", None) else None
    locked.reviewed_at = timezone.now()
    locked.review_note = note
    locked.full_clean(exclude=["case", "reviewed_by"])
    locked.save()
    _audit(suggestion=locked, action=DecisionAction.REJECT, from_status=SuggestionStatus.PENDING,
           user=acting_user, note=note)
    return locked


@transaction.atomic
def suggestion_mark_stale(*, suggestion: Suggestion, reason: str, acting_user: Any = None, note: str = "") -> Suggestion:
    locked = _locked_pending(suggestion)
    locked.status = SuggestionStatus.STALE
    locked.stale_reason = reason[:300]
    if acting_user is not None:
        locked.reviewed_by = acting_user if getattr(acting_user, "pk", None) else None
        locked.reviewed_at = timezone.now()
        locked.review_note = note
    locked.full_clean(exclude=["case", "reviewed_by"])
    locked.save()
    _audit(suggestion=locked, action=DecisionAction.STALE, from_status=SuggestionStatus.PENDING,
           user=acting_user, note=reason[:300])
    return locked


@transaction.atomic
def suggestion_rollback(*, suggestion: Suggestion, acting_user: Any, note: str = "") -> Suggestion:
    """Undo an applied suggestion that regressed: the case goes back to `base_version`'s content.
    A suggestion under experiment is rolled back through its experiment (a note is required)."""
    note = _clean_note(note)
    experiment = Experiment.objects.filter(suggestion_id=suggestion.pk).first()
    if experiment is not None:
        experiment_services.experiment_rollback(experiment=experiment, acting_user=acting_user, note=note)
        return Suggestion.objects.get(pk=suggestion.pk)
    locked = Suggestion.objects.select_for_update().get(pk=suggestion.pk)
    if locked.status != SuggestionStatus.APPROVED or locked.applied_version is None:
        raise Conflict(f"Suggestion #{locked.pk} was not applied.", errors={"status": [locked.status]})
    if locked.rolled_back_version is not None:
        raise Conflict(f"Suggestion #{locked.pk} was already rolled back (v{locked.rolled_back_version}).")
    if locked.verification != Verification.REGRESSED:
        raise Conflict(
            f"Suggestion #{locked.pk} has not regressed (verification: {locked.verification or 'none'}).",
            errors={"verification": ["Rollback is offered for regressions."]},
        )
    case = Case.objects.select_for_update().defer("embedding").get(pk=locked.case_id)
    if case.version != locked.applied_version:
        raise Conflict(
            f"The case is at version {case.version}, no longer the applied v{locked.applied_version}; "
            "roll it back from the case history instead."
        )
    rolled = case_rollback(case=case, to_version=locked.base_version, actor=_actor_name(acting_user))
    locked.rolled_back_version = rolled.version
    locked.status = SuggestionStatus.ROLLED_BACK
    locked.save(update_fields=["rolled_back_version", "status"])
    _audit(suggestion=locked, action=DecisionAction.ROLLBACK, from_status=SuggestionStatus.APPROVED,
           user=acting_user, note=note or f"rollback to v{locked.base_version}", case_version=rolled.version)
    _forget_verifying()
    return locked


# --- verification -----------------------------------------------------------------------


class VerificationSide(TypedDict):
    runs: int
    successes: int
    success_rate: float | None


class VerificationDetail(TypedDict):
    """`Suggestion.verification_detail`: the two sides compared and the test's verdict."""

    before: VerificationSide
    after: VerificationSide
    min_runs: int
    test: str
    z: float | None
    p_value: float | None
    status: NotRequired[str]  # a `Verification` value; set by every return of verification_compare


def verification_compare(*, before_runs: int, before_successes: int, after_runs: int,
                         after_successes: int, min_runs: int) -> VerificationDetail:
    """Two-proportion z-test of the success rates before and after a change (two-sided, 5 %)."""
    detail: VerificationDetail = {
        "before": {"runs": before_runs, "successes": before_successes,
                   "success_rate": before_successes / before_runs if before_runs else None},
        "after": {"runs": after_runs, "successes": after_successes,
                  "success_rate": after_successes / after_runs if after_runs else None},
        "min_runs": min_runs,
        "test": "two-proportion z-test, two-sided, alpha 0.05",
        "z": None,
        "p_value": None,
    }
    if before_runs < min_runs or after_runs < min_runs:
        detail["status"] = Verification.PENDING
        return detail
    p1, p2 = before_successes / before_runs, after_successes / after_runs
    pooled = (before_successes + after_successes) / (before_runs + after_runs)
    variance = pooled * (1 - pooled) * (1 / before_runs + 1 / after_runs)
    if variance == 0:
        # Both sides all successes or all failures: identical rates.
        detail["status"] = Verification.NO_CHANGE
        detail["z"] = 0.0
        detail["p_value"] = 1.0
        return detail
    z = (p2 - p1) / math.sqrt(variance)
    detail["z"] = round(z, 4)
    detail["p_value"] = round(math.erfc(abs(z) / math.sqrt(2)), 6)
    if abs(z) < Z_CRITICAL:
        detail["status"] = Verification.NO_CHANGE
    else:
        detail["status"] = Verification.IMPROVED if z > 0 else Verification.REGRESSED
    return detail


def suggestion_verify(*, suggestion: Suggestion) -> Suggestion:
    """Compare the runs of the applied version with those of the base version and store the verdict."""
    experiment = Experiment.objects.filter(suggestion_id=suggestion.pk).first()
    if experiment is not None:
        experiment_services.experiment_evaluate(experiment=experiment)
        return Suggestion.objects.get(pk=suggestion.pk)
    if suggestion.status != SuggestionStatus.APPROVED or suggestion.applied_version is None:
        return suggestion
    counts = version_counts(case_id=suggestion.case_id, versions=[suggestion.base_version, suggestion.applied_version])
    before, after = counts[suggestion.base_version], counts[suggestion.applied_version]
    detail = verification_compare(
        before_runs=before["runs"], before_successes=before["successes"],
        after_runs=after["runs"], after_successes=after["successes"], min_runs=min_runs_per_side(),
    )
    with transaction.atomic():
        locked = Suggestion.objects.select_for_update().get(pk=suggestion.pk)
        previous = locked.verification
        locked.verification = detail["status"]
        locked.verification_detail = detail
        locked.verified_at = timezone.now()
        locked.save(update_fields=["verification", "verification_detail", "verified_at"])
        if detail["status"] == Verification.REGRESSED and previous != Verification.REGRESSED and locked.rolled_back_version is None:
            # Lost if the broker is down (a warning is logged); the verdict is stored and shown in admin.
            task_queue.enqueue_on_commit("reflection.suggestions.tasks.notify_regression", locked.pk)
    return locked


VERIFYING_CACHE_KEY = "reflection:cases-under-verification"
VERIFYING_CACHE_SECONDS = 30


def cases_under_verification() -> frozenset[str]:
    """Ids of cases with an applied, not rolled back suggestion; one query per 30 s, not per case.

    Approvals and rollbacks drop the cached set in their process; elsewhere it is at most
    30 s old, and the next reflection run catches up.
    """
    ids = cache.get(VERIFYING_CACHE_KEY)
    if ids is None:
        ids = frozenset(
            str(case_id)
            for case_id in Suggestion.objects.filter(
                status=SuggestionStatus.APPROVED, rolled_back_version__isnull=True
            ).values_list("case_id", flat=True).distinct()
        )
        cache.set(VERIFYING_CACHE_KEY, ids, VERIFYING_CACHE_SECONDS)
    return ids


def _forget_verifying() -> None:
    # Now for this process, and again after commit in case another process refilled it meanwhile.
    cache.delete(VERIFYING_CACHE_KEY)
    transaction.on_commit(lambda: cache.delete(VERIFYING_CACHE_KEY))


def suggestions_verify_for_case(*, case_id: Any) -> int:
    """Re-verify every applied, not rolled back suggestion of a case (called by reflection runs)."""
    count = 0
    for suggestion in Suggestion.objects.filter(
        case_id=case_id, status=SuggestionStatus.APPROVED, rolled_back_version__isnull=True
    ):
        suggestion_verify(suggestion=suggestion)
        count += 1
    return count
