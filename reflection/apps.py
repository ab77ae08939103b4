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

    def ready(self) -> None:
        # Case search serves each caller the plan of its experiment arm; the case bank cannot
        # import reflection (the dependency rule), so reflection hands it the resolver.
        from casebank.cases.plans import set_plan_resolver
        from reflection.experiments.selectors import resolve_plans

        set_plan_resolver(resolve_plans)
