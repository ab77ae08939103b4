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

        register_budget()
