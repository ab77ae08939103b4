"""The demo's running experiment: one weak case's pending suggestion approved by the seed, and
runs on both arms served by `resolve_plan`, looked at a few times so its admin page has a chart.

Deterministic and idempotent like the rest of the demo: a case that already has an experiment
is left alone. The candidate does better (55 % against 40 %), but too few runs have come in
for the rule to decide: the page shows a canary still running.
"""
from __future__ import annotations

import uuid

from django.utils import timezone

from agents.demo.cases import DEMO_ACTOR, DEMO_NAMESPACE, demo_case_id
from casebank.models import Case
from reflection.experiments.selectors import resolve_plan
from reflection.experiments.services import experiment_evaluate
from reflection.models import ExecutionLog, Experiment, Suggestion, SuggestionStatus
from reflection.suggestions.services import suggestion_approve

SLUG = "churn-drivers"
LOOKS = 3
RUNS_PER_LOOK = 100
RATES = {"current": 0.40, "candidate": 0.55}


def seed_experiment() -> Experiment | None:
    """Start the demo experiment and log its runs; None when there is nothing to do."""
    case_id = demo_case_id(SLUG)
    if Experiment.objects.filter(case_id=case_id).exists():
        return None
    suggestion = Suggestion.objects.filter(case_id=case_id, status=SuggestionStatus.PENDING).order_by("-created_at").first()
    if suggestion is None:
        return None
    approved = suggestion_approve(suggestion=suggestion, acting_user=None, note=f"{DEMO_ACTOR}: a demo canary")
    experiment = Experiment.objects.filter(suggestion=approved).first()
    if experiment is None:  # stale, or experiments are off
        return None
    case = Case.objects.defer("embedding").get(pk=case_id)
    seen = {"current": 0, "candidate": 0}
    for look in range(LOOKS):
        now = timezone.now()  # after the approval: runs of the experiment's period
        logs = []
        for n in range(RUNS_PER_LOOK):
            key = str(uuid.uuid5(DEMO_NAMESPACE, f"experiment-session:{look}:{n}"))
            served = resolve_plan(case=case, key=key)
            arm = served.arm or "current"
            index, rate = seen[arm], RATES[arm]
            seen[arm] += 1
            success = int((index + 1) * rate) > int(index * rate)  # exactly the rate, no randomness
            logs.append(ExecutionLog(
                case_id=case_id, case_version=served.version, session_id=key, success=success,
                execution_time_ms=600 + 37 * n % 400, error_type="" if success else "TimeoutError",
                error_message="" if success else "query exceeded statement timeout of 10000 ms",
                created_at=now,
            ))
        ExecutionLog.objects.bulk_create(logs)
        experiment = experiment_evaluate(experiment=experiment)
    return experiment
