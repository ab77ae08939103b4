from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared plumbing and the project-wide commands (`setup_schedules`, `setup_roles`,
    `ensure_admin`, `bench`); no models."""

    name = "core"
    verbose_name = "Core"
