from django.apps import AppConfig

from core.schedules import Periodic


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"
    default_auto_field = "django.db.models.BigAutoField"
    schedules = (
        Periodic("agents: sweep sessions", "agents.sessions.tasks.sweep_sessions_task", "minute"),
    )

    def ready(self) -> None:
        # The supervisor's calls ("supervisor.*") get their own budget, apart from suggestions'.
        from agents.runtime.llm import register_budget
        from agents.runtime.planning import SUPERVISOR
        from agents.tools.workers import REGISTRY
        from casebank.cases.plan_editor import plan_agents_register

        register_budget()
        # The case form's plan editor offers these by name (the case bank cannot import them).
        plan_agents_register(*REGISTRY, SUPERVISOR)
