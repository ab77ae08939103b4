from django.apps import AppConfig


class CasebankConfig(AppConfig):
    name = "casebank"
    verbose_name = "Case bank"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casebank import schema  # noqa: F401  (registers the OpenAPI auth extension)
