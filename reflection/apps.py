from datetime import time

from django.apps import AppConfig

from casebank.schedules import Periodic


class ReflectionConfig(AppConfig):
    name = "reflection"
    verbose_name = "Reflection"
    default_auto_field = "django.db.models.BigAutoField"
    schedules = (
        Periodic("reflection: daily run", "reflection.tasks.daily_reflection_task", "day", at=time(1, 0)),
        Periodic("reflection: daily log retention", "reflection.tasks.retention_task", "day", at=time(3, 0)),
        Periodic("reflection: sweep runs", "reflection.tasks.sweep_runs_task", "minute"),
        # Weak cases whose suggestion waited for the LLM budget (reflection.suggestion_deferral).
        Periodic("reflection: deferred suggestions", "reflection.tasks.deferred_suggestions_task", "minute"),
    )
