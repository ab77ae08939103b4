"""Reads of experiments: which version a key runs, the counts of each arm.

`resolve_plan` is the one answer to "which version of case X runs for key K": the supervisor's
planner (key: the session id), case search for external agents and `GET
/api/cases/{id}/plan/` (key: the `X-Caseloop-Assignment-Key` header, a `key` parameter, else
the API key) all call it, and log ingestion attributes keyless logs the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from casebank.cases.plans import ServedPlan
from casebank.models import Case, CaseVersion
from core.errors import NotFound
from reflection.experiments.assignment import Arm, assign_arm
from reflection.experiments.sequential import ArmCounts, total_counts
from reflection.models import DailyCaseRollup, ExecutionLog, Experiment, ExperimentStatus, ExperimentStep


def experiment_list(*, status: str | None = None, case_id: Any = None) -> QuerySet[Experiment]:
    """Experiments, newest first (filters validated by the caller). `status` is served by
    `experiment_status_case_idx`, `case` by the foreign key's index."""
    experiments = Experiment.objects.all()
    if status:
        experiments = experiments.filter(status=status)
    if case_id is not None:
        experiments = experiments.filter(case_id=case_id)
    return experiments.order_by("-started_at", "-pk")


def experiment_get(experiment_id: int) -> Experiment:
    # Ids beyond bigint would make PostgreSQL raise instead of finding nothing.
    experiment = Experiment.objects.filter(pk=experiment_id).first() if 0 < experiment_id < 2**63 else None
    if experiment is None:
        raise NotFound(f"No experiment with id {experiment_id}.")
    return experiment


def experiment_key(experiment_id: int) -> str:
    """The name an experiment hashes keys under (`assignment.assign_arm`)."""
    return f"experiment-{experiment_id}"


@dataclass(frozen=True)
class RunningExperiment:
    id: int
    case_id: str
    base_version: int
    candidate_version: int
    candidate_share: float

    def arm_of(self, key: str) -> Arm:
        return assign_arm(experiment=experiment_key(self.id), key=key, candidate_share=self.candidate_share)

    def version_of(self, key: str) -> int:
        return self.candidate_version if self.arm_of(key) is Arm.CANDIDATE else self.base_version


def running_experiments(case_ids: Sequence[Any]) -> dict[str, RunningExperiment]:
    """The running experiment of each of these cases (at most one each), by case id as text.
    One query on `experiment_status_case_idx`."""
    if not case_ids:
        return {}
    rows = Experiment.objects.filter(status=ExperimentStatus.RUNNING, case_id__in=list(case_ids)).values_list(
        "pk", "case_id", "base_version", "candidate_version", "candidate_share"
    )
    return {
        str(case_id): RunningExperiment(id=pk, case_id=str(case_id), base_version=base, candidate_version=candidate,
                                        candidate_share=share)
        for pk, case_id, base, candidate, share in rows
    }


def resolve_plans(cases: Sequence[Case], key: str) -> dict[str, ServedPlan]:
    """`resolve_plan` for many cases at once: one query, two when a candidate is served."""
    running = running_experiments([case.pk for case in cases])
    served: dict[str, ServedPlan] = {}
    wanted: dict[tuple[str, int], RunningExperiment] = {}
    for case in cases:
        experiment = running.get(str(case.pk))
        # A case edited since the experiment started serves its new current version to everyone.
        if experiment is None or experiment.base_version != case.version:
            served[str(case.pk)] = ServedPlan(version=case.version, plan=case.plan)
        elif experiment.arm_of(key) is Arm.CURRENT:
            served[str(case.pk)] = ServedPlan(version=case.version, plan=case.plan, arm=Arm.CURRENT.value,
                                              experiment_id=experiment.id)
        else:
            wanted[(str(case.pk), experiment.candidate_version)] = experiment
    if wanted:
        lookup = Q()
        for wanted_case, wanted_version in wanted:
            lookup |= Q(case_id=wanted_case, version=wanted_version)
        for case_id, version, plan in CaseVersion.objects.filter(lookup).values_list("case_id", "version", "plan"):
            experiment = wanted[(str(case_id), version)]
            served[str(case_id)] = ServedPlan(version=version, plan=plan, arm=Arm.CANDIDATE.value,
                                              experiment_id=experiment.id)
    for case in cases:
        served.setdefault(str(case.pk), ServedPlan(version=case.version, plan=case.plan))
    return served


def resolve_plan(*, case: Case, key: str) -> ServedPlan:
    """The version (number and plan) that `key` runs of `case`, with its experiment arm (None
    when no experiment runs on the case). Deterministic: the same key gets the same answer on
    every replica, with nothing stored."""
    return resolve_plans([case], key)[str(case.pk)]


def version_counts(*, case_id: Any, versions: list[int]) -> dict[int, dict[str, int]]:
    """Runs and successes of each of a case's versions: raw logs plus the per-version counts of
    the daily roll-ups that replaced older logs (the two never overlap: a roll-up is made of
    the rows it deleted)."""
    counts = {version: {"runs": 0, "successes": 0} for version in versions}
    for row in (
        ExecutionLog.objects.filter(case_id=case_id, case_version__in=versions)
        .values("case_version")
        .annotate(runs=Count("id"), successes=Count("id", filter=Q(success=True)))
    ):
        version = row["case_version"]
        assert version is not None  # filtered on the versions
        version_counted = counts[version]
        version_counted["runs"] += row["runs"]
        version_counted["successes"] += row["successes"]
    for by_version in DailyCaseRollup.objects.filter(case_id=case_id).exclude(versions={}).values_list(
        "versions", flat=True
    ):
        for version in versions:
            rolled = by_version.get(str(version))
            if rolled:
                counts[version]["runs"] += int(rolled["runs"])
                counts[version]["successes"] += int(rolled["successes"])
    return counts


@dataclass(frozen=True)
class StepCounts:
    """One ramp step's share and the runs both arms had in it."""

    number: int
    share: float
    started_at: Any
    counts: ArmCounts


def _difference(later: tuple[int, int, int, int], earlier: tuple[int, int, int, int]) -> ArmCounts:
    # Never negative, and successes never above runs: counts only grow, but a case's logs could
    # be deleted by hand.
    runs_c, runs_t = max(0, later[0] - earlier[0]), max(0, later[2] - earlier[2])
    return ArmCounts(current_runs=runs_c, current_successes=min(runs_c, max(0, later[1] - earlier[1])),
                     candidate_runs=runs_t, candidate_successes=min(runs_t, max(0, later[3] - earlier[3])))


def step_counts(experiment: Experiment) -> list[StepCounts]:
    """Both arms' runs in each step of the ramp: the next step's snapshot (or the totals now)
    less the step's own. Exact whatever retention rolled up since, because totals are kept per
    version in raw logs and roll-ups alike. Two queries plus the steps'."""
    counts = version_counts(case_id=experiment.case_id,
                            versions=[experiment.base_version, experiment.candidate_version])
    base, candidate = counts[experiment.base_version], counts[experiment.candidate_version]
    now = (base["runs"], base["successes"], candidate["runs"], candidate["successes"])
    steps = list(ExperimentStep.objects.filter(experiment=experiment).order_by("number"))
    if not steps:  # never true after `experiment_start`; kept so a hand-made row still counts
        steps = [ExperimentStep(number=1, share=experiment.candidate_share, started_at=experiment.started_at,
                                base_runs_at_start=experiment.base_runs_before,
                                base_successes_at_start=experiment.base_successes_before,
                                candidate_runs_at_start=0, candidate_successes_at_start=0)]
    snapshots = [(step.base_runs_at_start, step.base_successes_at_start, step.candidate_runs_at_start,
                  step.candidate_successes_at_start) for step in steps]
    return [
        StepCounts(number=step.number, share=step.share, started_at=step.started_at,
                   counts=_difference(later, snapshot))
        for step, snapshot, later in zip(steps, snapshots, [*snapshots[1:], now], strict=True)
    ]


def arm_counts(experiment: Experiment) -> ArmCounts:
    """Both arms' cumulative counts since the experiment started (the sum of its steps)."""
    return total_counts([step.counts for step in step_counts(experiment)])
