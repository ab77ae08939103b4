from datetime import time

from django.apps import AppConfig

from core.schedules import Periodic


class ReflectionConfig(AppConfig):
    name = "reflection"
    verbose_name = "Reflection"
    default_auto_field = "django.db.models.BigAutoField"
    schedules = (
        Periodic("reflection: daily run", "reflection.analysis.tasks.daily_reflection_task", "day", at=time(1, 0)),
        Periodic("reflection: daily log retention", "reflection.analysis.tasks.retention_task", "day", at=time(3, 0)),
        Periodic("reflection: sweep runs", "reflection.analysis.tasks.sweep_runs_task", "minute"),
        # Weak cases whose suggestion waited for the LLM budget (reflection.suggestions.deferral).
        Periodic("reflection: deferred suggestions", "reflection.suggestions.tasks.deferred_suggestions_task", "minute"),
    )
