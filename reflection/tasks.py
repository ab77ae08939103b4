"""django-q2 tasks of reflection: thin functions taking ids, calling services."""
from __future__ import annotations

import logging

from reflection.models import ReflectionTrigger

logger = logging.getLogger(__name__)


def reflection_run_task(run_id: int) -> dict:
    from reflection.services import reflection_run_execute

    run = reflection_run_execute(run_id)
    return {"run_id": run.pk, "status": run.status, "cases_analysed": run.cases_analysed}


def early_reflection_task(case_ids: list[str]) -> int:
    """100 new logs arrived for these cases: queue a run limited to them."""
    from django.db import transaction

    from casebank.models import Case
    from reflection.services import reflection_run_start

    known = [str(pk) for pk in Case.objects.filter(pk__in=case_ids).values_list("pk", flat=True)]
    if not known:
        return 0
    with transaction.atomic():
        run = reflection_run_start(trigger=ReflectionTrigger.EARLY, requested_by="early trigger", case_ids=known)
    return run.pk


def daily_reflection_task() -> int:
    """The daily schedule: one run over every case with new logs."""
    from django.db import transaction

    from reflection.services import reflection_run_start

    with transaction.atomic():
        run = reflection_run_start(trigger=ReflectionTrigger.SCHEDULE, requested_by="schedule")
    return run.pk


def retention_task() -> dict:
    from reflection.retention import logs_roll_up_and_purge

    return logs_roll_up_and_purge()



def logs_write_task(items: list[dict]) -> int:
    """Background log write (agents enqueue their runs' logs here instead of waiting on the
    insert). Items carry client-assigned ids, so a retry after a killed worker stores each log
    once; returns how many were new.

    Invalid items are logged and dropped, the valid ones stored: raising would only make the
    queue retry input that fails the same way every time."""
    from reflection.ingestion import logs_ingest, parse_each

    records, errors = parse_each(items)
    if errors:
        logger.error("logs_write_task: %d of %d log(s) refused and dropped: %s",
                     len(errors), len(items), dict(list(errors.items())[:10]))
    return logs_ingest(records=records).created
