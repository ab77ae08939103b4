"""Deploy checks (`manage.py check --deploy`) for the project's own settings.

Rate limits and failed-authentication counters live in the "default" cache. In process memory
(no REDIS_URL) every process counts on its own: two gunicorn workers let 200 of 300 requests
through a 100/min key with no warning (issue #17). `local_rate_limit_problem` says so; gunicorn's
`on_starting` refuses to start such a server and the deploy check warns.

Django's `security.W009` flags a short or `django-insecure-` key, but the placeholder of
`deploy/env.example` is long and varied enough to pass it: copying the file unedited would run
production with a key published in this repository (sessions and CSRF tokens forgeable).
"""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

# Every placeholder in deploy/env.example starts with this.
PLACEHOLDER_PREFIX = "change-me"


def _is_placeholder(value: str) -> bool:
    return value.strip().lower().startswith(PLACEHOLDER_PREFIX)


@register(Tags.security, deploy=True)
def check_secret_key_is_not_the_placeholder(app_configs=None, **kwargs) -> list[Error]:
    if not _is_placeholder(settings.SECRET_KEY):
        return []
    return [Error(
        "DJANGO_SECRET_KEY is the placeholder from deploy/env.example.",
        hint="Set it to 50 or more random characters, e.g. "
             "python -c 'import secrets; print(secrets.token_urlsafe(60))'.",
        id="caseloop.E001",
    )]


@register()
def check_vector_threshold_is_calibrated(app_configs=None, **kwargs) -> list[Warning]:
    """A model with no calibrated threshold keeps every vector match: measure one and set it."""
    from casebank.search.embeddings import CALIBRATED_VECTOR_THRESHOLDS, model_label

    if settings.RETRIEVAL_VECTOR_THRESHOLD is not None:
        return []
    label = model_label()
    if label in CALIBRATED_VECTOR_THRESHOLDS or label.rstrip("/").rsplit("/", 1)[-1] in CALIBRATED_VECTOR_THRESHOLDS:
        return []
    return [Warning(
        f"No similarity threshold is calibrated for EMBEDDING_MODEL={label!r}; vector matches are not filtered.",
        hint="Measure one on the labelled sets (make bench, section retrieval) and set RETRIEVAL_VECTOR_THRESHOLD.",
        id="caseloop.W001",
    )]


# Caches whose counters live in one process only.
PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def local_rate_limit_problem(workers: int) -> str | None:
    """Why `workers` processes cannot enforce the rate limits here, or None when they can."""
    backend = settings.CACHES["default"]["BACKEND"]
    if workers <= 1 or backend not in PROCESS_LOCAL_CACHES or settings.API_ALLOW_LOCAL_RATE_LIMITS:
        return None
    return (
        f"{workers} processes would serve the API, but rate limits are counted in each process's memory "
        f"({backend.rsplit('.', 1)[-1]}): every key could make {workers} times its rate. Set REDIS_URL (a shared "
        "cache), run one worker (WEB_WORKERS=1), or set API_ALLOW_LOCAL_RATE_LIMITS=true if that is meant."
    )


@register(Tags.security, deploy=True)
def check_rate_limits_are_shared(app_configs=None, **kwargs) -> list[Warning]:
    problem = local_rate_limit_problem(settings.WEB_WORKERS)
    if problem is None:
        return []
    return [Warning(problem, hint="docs/deployment.md, \"Rate limits\".", id="caseloop.W002")]
