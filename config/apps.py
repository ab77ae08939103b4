from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project itself, as an app only so that its system checks are registered."""

    name = "config"
    label = "caseloop_project"
    verbose_name = "Caseloop project"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers the checks)
