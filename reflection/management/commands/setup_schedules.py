"""`manage.py setup_schedules`: create or update the django-q2 schedules (idempotent, by name)."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone as dt_timezone
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from django_q.models import Schedule


def _next(at: time, *, weekday: int | None = None) -> datetime:
    """The next moment at `at` UTC (on `weekday`, Monday=0, when given)."""
    now = timezone.now()
    moment = datetime.combine(now.date(), at, tzinfo=dt_timezone.utc)
    while moment <= now or (weekday is not None and moment.weekday() != weekday):
        moment += timedelta(days=1)
    return moment


SCHEDULES = [
    # name, function, schedule type, first run
    ("reflection: daily run", "reflection.tasks.daily_reflection_task", Schedule.DAILY, lambda: _next(time(1, 0))),
    # Weak cases whose suggestion waited for the LLM budget (reflection.suggestion_deferral).
    ("reflection: deferred suggestions", "reflection.tasks.deferred_suggestions_task", Schedule.MINUTES,
     lambda: timezone.now() + timedelta(minutes=1)),
    ("reflection: daily log retention", "reflection.tasks.retention_task", Schedule.DAILY, lambda: _next(time(3, 0))),
    ("casebank: weekly consolidation (dry run)", "casebank.consolidation.consolidation_task", Schedule.WEEKLY,
     lambda: _next(time(2, 0), weekday=6)),
]


class Command(BaseCommand):
    help = "Create or update the reflection, deferred-suggestion, retention and consolidation schedules (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, func, schedule_type, first_run in SCHEDULES:
            existing = Schedule.objects.filter(name=name).first()
            defaults = {"func": func, "schedule_type": schedule_type, "repeats": -1}
            if schedule_type == Schedule.MINUTES:
                defaults["minutes"] = 1
            if existing is None or existing.schedule_type != schedule_type:
                # Only a new (or re-typed) schedule gets its first run set; an existing one
                # keeps its next_run, so running this command again never shifts the timetable.
                defaults["next_run"] = first_run()
            _, created = Schedule.objects.update_or_create(name=name, defaults=defaults)
            self.stdout.write(f"{'created' if created else 'updated'}: {name} ({func})")
