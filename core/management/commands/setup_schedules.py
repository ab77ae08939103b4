"""`manage.py setup_schedules`: create or update the django-q2 schedules (idempotent, by name).

Each app declares its periodic tasks on its AppConfig (`schedules`, see core.schedules).
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from core.schedules import Periodic

TYPES = {"minute": Schedule.MINUTES, "day": Schedule.DAILY, "week": Schedule.WEEKLY}


def _next(at: time, *, weekday: int | None = None) -> datetime:
    """The next moment at `at` UTC (on `weekday`, Monday=0, when given)."""
    now = timezone.now()
    moment = datetime.combine(now.date(), at, tzinfo=dt_timezone.utc)
    while moment <= now or (weekday is not None and moment.weekday() != weekday):
        moment += timedelta(days=1)
    return moment


def declared_schedules() -> list[Periodic]:
    return [periodic for config in apps.get_app_configs() for periodic in getattr(config, "schedules", ())]


class Command(BaseCommand):
    help = "Create or update every app's schedules: reflection, retention, consolidation, sweepers (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        for periodic in declared_schedules():
            import_string(periodic.func)  # a misspelt task fails here, not every minute in the cluster
            schedule_type = TYPES[periodic.every]
            existing = Schedule.objects.filter(name=periodic.name).first()
            defaults: dict[str, Any] = {"func": periodic.func, "schedule_type": schedule_type, "repeats": -1}
            if schedule_type == Schedule.MINUTES:
                defaults["minutes"] = 1
            if existing is None or existing.schedule_type != schedule_type:
                # Only a new (or re-typed) schedule gets its first run set; an existing one
                # keeps its next_run, so running this command again never shifts the timetable.
                defaults["next_run"] = timezone.now() if periodic.at is None else _next(periodic.at, weekday=periodic.weekday)
            _, created = Schedule.objects.update_or_create(name=periodic.name, defaults=defaults)
            self.stdout.write(f"{'created' if created else 'updated'}: {periodic.name} ({periodic.func})")
