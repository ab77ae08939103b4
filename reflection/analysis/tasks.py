"""django-q2 tasks of reflection: thin functions taking ids, calling services."""
from __future__ import annotations

import logging

from reflection.models import ReflectionTrigger

logger = logging.getLogger(__name__)


def reflection_run_task(run_id: int) -> dict:
    from reflection.analysis.services import reflection_run_execute

    run = reflection_run_execute(run_id)
    return {"run_id": run.pk, "status": run.status, "cases_analysed": run.cases_analysed}


def early_reflection_task(case_ids: list[str]) -> int:
    """100 new logs arrived for these cases: queue a run limited to them."""
    from django.db import transaction

    from casebank.models import Case
    from reflection.analysis.services import reflection_run_start

    known = [str(pk) for pk in Case.objects.filter(pk__in=case_ids).values_list("pk", flat=True)]
    if not known:
        return 0
    with transaction.atomic():
        run = reflection_run_start(trigger=ReflectionTrigger.EARLY, requested_by="early trigger", case_ids=known)
    return run.pk


def daily_reflection_task() -> int:
    """The daily schedule: one run over every case with new logs."""
    from django.db import transaction

    from reflection.analysis.services import reflection_run_start

    with transaction.atomic():
        run = reflection_run_start(trigger=ReflectionTrigger.SCHEDULE, requested_by="schedule")
    return run.pk


def sweep_runs_task() -> dict[str, int]:
    """Every minute: hand out again the runs that lost tasks left queued or running."""
    from reflection.analysis.services import reflection_runs_sweep

    return reflection_runs_sweep()


def retention_task() -> dict:
    from reflection.analysis.retention import logs_roll_up_and_purge

    return logs_roll_up_and_purge()
