from datetime import time

from django.apps import AppConfig

from core.schedules import Periodic


class CasebankConfig(AppConfig):
    name = "casebank"
    verbose_name = "Case bank"
    default_auto_field = "django.db.models.BigAutoField"
    schedules = (
        Periodic("casebank: weekly consolidation (dry run)", "casebank.consolidation.tasks.consolidation_task", "week",
                 at=time(2, 0), weekday=6),
    )

    def ready(self) -> None:
        from django.conf import settings

        from casebank.access import schema  # noqa: F401  (registers the OpenAPI auth extension)

        if settings.EMBEDDINGS_WARM_ON_START:
            from casebank.search.embeddings import warm_in_background

            warm_in_background()
