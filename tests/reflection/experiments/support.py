"""Shared builders of the experiment tests: an approved suggestion on a degrading case, and
runs of both arms sent the way agents send them (through `POST /api/logs/`)."""
from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from casebank.models import Case
from reflection.experiments.selectors import resolve_plan
from reflection.models import ExecutionLog, Experiment, Suggestion
from reflection.suggestions.services import suggestion_approve
from tests.reflection.suggestion_helpers import PLAN, make_suggestion


def approved_experiment(make_case, reviewer, **case_fields) -> Experiment:
    case = make_case(plan=PLAN, **case_fields)
    suggestion = suggestion_approve(suggestion=make_suggestion(case), acting_user=reviewer)
    return Experiment.objects.get(suggestion=suggestion)


def keys(count: int, prefix: str = "session") -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{n}")) for n in range(count)]


def send_runs(api, experiment: Experiment, *, keys: list[str], current_rate: float, candidate_rate: float,
              with_version: bool = True) -> dict[str, int]:
    """One run per key, on the version `resolve_plan` serves it; the n-th run of an arm succeeds
    while n * rate moves to the next whole number (an exact share, no randomness)."""
    case = Case.objects.get(pk=experiment.case_id)
    seen = {"current": 0, "candidate": 0}
    batch = []
    for key in keys:
        served = resolve_plan(case=case, key=key)
        arm = served.arm or "current"
        rate = candidate_rate if arm == "candidate" else current_rate
        n = seen[arm]
        seen[arm] += 1
        success = int((n + 1) * rate) > int(n * rate)
        log = {"case_id": str(case.pk), "session_id": key, "success": success, "execution_time_ms": 500,
               "error_type": "" if success else "TimeoutError"}
        if with_version:
            log["case_version"] = served.version
        batch.append(log)
    for start in range(0, len(batch), 1_000):
        response = api.post("/api/logs/", batch[start:start + 1_000], format="json")
        assert response.status_code == 201, response.content
    return seen


def backdated_runs(case_id, *, version: int, runs: int, successes: int, age: timedelta) -> None:
    created = timezone.now() - age
    ExecutionLog.objects.bulk_create([
        ExecutionLog(case_id=case_id, case_version=version, success=i < successes, execution_time_ms=500,
                     error_type="" if i < successes else "TimeoutError", created_at=created)
        for i in range(runs)
    ])


def suggestion_of(experiment: Experiment) -> Suggestion:
    return Suggestion.objects.get(pk=experiment.suggestion_id)
