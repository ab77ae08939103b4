"""Caseloop settings: one module, read from the environment.

With no environment at all the dev server starts on SQLite, a local-memory cache and
django-q2's ORM broker. `DATABASE_URL` switches to PostgreSQL (+ pgvector), `REDIS_URL`
switches the cache and the task broker to Redis. Secrets only ever come from the environment.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A fixed development key is only tolerated in DEBUG; production must supply its own.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and env.bool("CASELOOP_REQUIRE_SECRET", default=False):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production.")
    # The "django-insecure-" prefix makes `check --deploy` flag it (security.W009).
    SECRET_KEY = "django-insecure-caseloop-dev-only-key-do-not-use-in-production"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS hardening, off by default so the dev server works over http; docs/deployment.md lists
# the production values that make `manage.py check --deploy` clean.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# Probes and scrapers talk plain HTTP to the pod: config.probes answers them before this.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Parts whose failure makes /health answer 503 (see config/health.py).
HEALTH_REQUIRED = env.list("HEALTH_REQUIRED", default=["database"])

# Prometheus multiprocess mode (config/metrics.py): each process writes its metrics into this
# directory. Any manage.py command started where it is set (a shell in a web container) would
# fail on its first metric if the directory were missing, so make sure it exists.
if env.str("PROMETHEUS_MULTIPROC_DIR", default=""):
    Path(env.str("PROMETHEUS_MULTIPROC_DIR")).mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "core",
    "casebank",
    "reflection",
    "agents",
    "config.apps.ProjectConfig",  # deploy checks (config/checks.py)
]

MIDDLEWARE = [
    # First: probes and the scraper address the pod by IP over plain HTTP (config/probes.py).
    "config.probes.probe_middleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before CommonMiddleware: /api/ paths take or drop the trailing slash without a redirect.
    "config.api_paths.api_paths_middleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Marks expected refusals for the `django.request` log filter (config/expected_refusals.py).
    "config.expected_refusals.expected_refusal_middleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
# The largest request body read into memory; a larger one answers a JSON 413 on /api/
# (config.exception_handler). 2.5 MiB, Django's default, holds a batch of 1,000 typical logs.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=2_621_440)
# A refused CSRF check on an /api/ path (a POST with a session cookie) is JSON too.
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_url(url: str) -> dict:
    config = environ.Env.db_url_config(url)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            # WAL lets the qcluster write logs while the web process reads.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    elif engine == "django.db.backends.postgresql":
        config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        config["CONN_HEALTH_CHECKS"] = True
    else:
        raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:// or postgres://, got {engine}.")
    return config


DATABASE_URL = env.str("DATABASE_URL", default="")
if not DATABASE_URL:
    # The embedded default: a SQLite file under var/, created on first use.
    VAR_DIR.mkdir(exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'caseloop.sqlite3'}"
DATABASES = {"default": _database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Layered cache (core.cache): "l1" is this process's memory, "l2" the shared Redis. The
# "default" alias (throttling, sessions) is the same Redis but ignores its errors, so a Redis
# outage never fails a request; "l2" raises, so the layered cache can notice and back off.
_L1_CACHE = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l1",
             "OPTIONS": {"MAX_ENTRIES": env.int("CACHE_L1_MAX_ENTRIES", default=10_000)}}
if REDIS_URL:
    _redis_options = {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {**_redis_options, "IGNORE_EXCEPTIONS": True},
        },
        "l2": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL, "OPTIONS": _redis_options},
        "l1": _L1_CACHE,
        # Not a cache: the task broker's pooled connection (django-q2 opens a new connection per
        # enqueue from a plain URL). Its reads block up to 1 s, so the socket waits longer.
        "q_broker": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL,
                     "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 5}},
    }
    CACHE_L2_ALIAS = "l2"
    READ_CACHE_GENERATION_ALIAS = "default"
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "l1": _L1_CACHE,
        # The case bank's generation (casebank.cases.read_cache) must be one counter for the
        # web process and the queue worker: in local memory a worker's write could not retire
        # the web process's cached reads. A file per key, read once per cached read (~30 µs).
        "shared": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                   "LOCATION": env.str("SHARED_CACHE_DIR", default=str(VAR_DIR / "shared_cache"))},
    }
    CACHE_L2_ALIAS = ""
    READ_CACHE_GENERATION_ALIAS = "shared"
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
CACHE_L1_ALIAS = "l1"
CACHE_L1_SECONDS = env.int("CACHE_L1_SECONDS", default=30)
# How many processes serve the API on this machine (scripts/serve.sh starts that many gunicorn
# workers; it exports the value). Rate limits are counted in the "default" cache, which is this
# process's memory without REDIS_URL: N processes would let N times a key's rate through, so
# gunicorn refuses to start more than one worker without Redis (config.gunicorn) and
# `check --deploy` warns (caseloop.W002), unless API_ALLOW_LOCAL_RATE_LIMITS says it is meant.
WEB_WORKERS = env.int("WEB_WORKERS", default=1)
API_ALLOW_LOCAL_RATE_LIMITS = env.bool("API_ALLOW_LOCAL_RATE_LIMITS", default=False)
# How long an authenticated API key is trusted without asking the database; a revoked key
# stops working on every replica within this many seconds (0: ask every time).
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=10)
# Search results and single cases are cached this long; any case write retires them at once
# where the cache is shared (Redis). Usage counters in a cached read may lag by this much.
READ_CACHE_SECONDS = env.int("READ_CACHE_SECONDS", default=30)
CACHE_L2_RETRY_SECONDS = env.float("CACHE_L2_RETRY_SECONDS", default=5.0)

# django-q2: `timeout` must stay below `retry`, or a slow task would be handed out twice.
Q_CLUSTER = {
    "name": "caseloop",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=360),
    "max_attempts": 5,
    "save_limit": 1000,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    Q_CLUSTER["django_redis"] = "q_broker"
else:
    Q_CLUSTER["orm"] = "default"
    # Cluster heartbeats (read by /health) live in a cache every local process can see; the
    # Redis broker keeps them in Redis instead.
    CACHES["q_stats"] = {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": env.str("Q_STATS_DIR", default=str(VAR_DIR / "q_stats")),
    }
    Q_CLUSTER["cache"] = "q_stats"
Q_CLUSTER["sync"] = env.bool("Q_SYNC", default=False)
# After a failed enqueue the broker is left alone this long (core.task_queue); the work is
# stored and a sweeper hands it out once the broker is back.
TASK_BROKER_RETRY_SECONDS = env.float("TASK_BROKER_RETRY_SECONDS", default=5.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["casebank.access.authentication.ApiKeyAuthentication"],
    # Every view names the scopes its methods need (`required_scopes`); one naming none is
    # refused (casebank.access.permissions), so a new endpoint cannot be open to every key.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "casebank.access.permissions.RequiredScopes",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # orjson: fast, and too-deep or malformed JSON is a 400 on every endpoint (casebank.parsers).
    "DEFAULT_PARSER_CLASSES": ["core.parsers.OrjsonParser"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.CaseloopAutoSchema",
    "EXCEPTION_HANDLER": "config.exception_handler.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Per API key and tier, counted in the shared "default" cache (casebank.throttling).
    "DEFAULT_THROTTLE_CLASSES": ["casebank.access.throttling.ApiKeyTierThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "standard": env.str("API_RATE_STANDARD", default="100/min"),
        "premium": env.str("API_RATE_PREMIUM", default="1000/min"),
        "anon": env.str("API_RATE_ANON", default="60/min"),
        # Failed authentications per client address (casebank.access.throttling).
        "failed_auth": env.str("API_RATE_FAILED_AUTH", default="30/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Caseloop API",
    "DESCRIPTION": (
        "Case bank, execution log, reflection and supervisor of agents that learn from their "
        "own runs. Every endpoint needs `Authorization: Token <key>`."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["config.schema_hooks.drop_slash_aliases"],
    # The event stream is not a DRF view; the hook describes it (the default enum hook stays).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema_hooks.add_session_stream",
    ],
    # Several models have a `status`; stable enum names keep `check --deploy` and clients clean.
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "casebank.cases.models.CaseStatus",
        # Sessions and reflection runs share one lifecycle (same values, so one enum).
        "RunStatusEnum": "reflection.analysis.models.ReflectionRunStatus",
        "SuggestionStatusEnum": "reflection.suggestions.models.SuggestionStatus",
        "ExperimentStatusEnum": "reflection.experiments.models.ExperimentStatus",
    },
    # Served from the sidecar package: the docs page must work without a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Embeddings: the offline all-MiniLM-L6-v2 package by default, or any sentence-transformers
# model by name or path.
EMBEDDING_MODEL = env.str("EMBEDDING_MODEL", default="")
# Intra-op threads per process for embeddings, on either backend (0: the runtime's default, one per core).
EMBEDDING_THREADS = env.int("EMBEDDING_THREADS", default=1)
# What runs the model: "onnx" (ONNX Runtime + tokenizers, no torch in the process: ~300 MB less
# per process) or "torch" (transformers). Layouts the ONNX path cannot reproduce run on torch.
EMBEDDING_BACKEND = env.str("EMBEDDING_BACKEND", default="onnx")
if EMBEDDING_BACKEND not in ("onnx", "torch"):
    raise ImproperlyConfigured(f"EMBEDDING_BACKEND must be onnx or torch, got {EMBEDDING_BACKEND!r}.")
# Where the ONNX graph exported from the model is kept (`manage.py prepare_embeddings` writes it).
EMBEDDING_CACHE_DIR = Path(env.str("EMBEDDING_CACHE_DIR", default=str(VAR_DIR / "embeddings")))
# Load the embedding model when the web process starts (in the background; /health/ready answers
# 503 until it is loaded), not in the first search (7.4 s). Off by default so that commands and
# tests never pay for it; `make run` turns it on for the web server.
EMBEDDINGS_WARM_ON_START = env.bool("EMBEDDINGS_WARM_ON_START", default=False)
# The model's output size; after changing the model, `manage.py rebuild_embeddings` re-embeds
# cases and documents and rebuilds the vector columns and HNSW indexes at this size.
EMBEDDING_DIMENSIONS = env.int("EMBEDDING_DIMENSIONS", default=384)

# Supervisor and workers (agents app); defaults and meaning in docs/agents.md.
QUALITY_THRESHOLD = env.float("QUALITY_THRESHOLD", default=0.6)
AGENTS_MAX_ITERATIONS = env.int("AGENTS_MAX_ITERATIONS", default=3)
AGENTS_AGENT_TIMEOUT_S = env.float("AGENTS_AGENT_TIMEOUT_S", default=30.0)
AGENTS_SESSION_TIMEOUT_S = env.float("AGENTS_SESSION_TIMEOUT_S", default=120.0)
AGENTS_PLANNER_LLM_TIMEOUT_S = env.float("AGENTS_PLANNER_LLM_TIMEOUT_S", default=10.0)
AGENTS_CASE_SIMILARITY = env.float("AGENTS_CASE_SIMILARITY", default=0.8)
AGENTS_LLM_REQUESTS_PER_MINUTE = env.int("AGENTS_LLM_REQUESTS_PER_MINUTE", default=500)
AGENTS_LLM_TOKENS_PER_MINUTE = env.int("AGENTS_LLM_TOKENS_PER_MINUTE", default=200_000)
AGENTS_LLM_BUDGET_WAIT_S = env.float("AGENTS_LLM_BUDGET_WAIT_S", default=30.0)
AGENTS_SIMILAR_CASES = env.int("AGENTS_SIMILAR_CASES", default=4)
# Text2SQL target: sqlite:///path or postgres://... (give it a read-only role); empty = var/analytics.sqlite3.
ANALYTICS_DATABASE_URL = env.str("ANALYTICS_DATABASE_URL", default="")
ANALYTICS_ALLOWED_TABLES = env.list(
    "ANALYTICS_ALLOWED_TABLES", default=["customers", "products", "orders", "order_items", "support_tickets"]
)
ANALYTICS_STATEMENT_TIMEOUT_MS = env.int("ANALYTICS_STATEMENT_TIMEOUT_MS", default=5000)
ANALYTICS_ROW_CAP = env.int("ANALYTICS_ROW_CAP", default=500)
ANALYTICS_MAX_CELL_BYTES = env.int("ANALYTICS_MAX_CELL_BYTES", default=4096)
ANALYTICS_MAX_RESULT_BYTES = env.int("ANALYTICS_MAX_RESULT_BYTES", default=1_000_000)
# The cost check (agents/tools/sql_cost.py): the planner's row estimate at any step, and on
# PostgreSQL its total cost. The demo's questions estimate at most ~15,000 rows (a correlated
# EXISTS on SQLite 1.6 million) and a cost under 600; a self-join of orders 16 million rows, an
# inequality join 5.3 million (docs/agents.md).
ANALYTICS_MAX_PLAN_ROWS = env.int("ANALYTICS_MAX_PLAN_ROWS", default=4_000_000)
ANALYTICS_MAX_PLAN_COST = env.float("ANALYTICS_MAX_PLAN_COST", default=1_000_000.0)
# PostgreSQL: the role the analytics transaction runs as (`manage.py setup_analytics_role`
# creates it with SELECT on ANALYTICS_ALLOWED_TABLES only); empty = the login's own role.
ANALYTICS_ROLE = env.str("ANALYTICS_ROLE", default="")
ANALYTICS_WORK_MEM = env.str("ANALYTICS_WORK_MEM", default="16MB")
ANALYTICS_TEMP_FILE_LIMIT = env.str("ANALYTICS_TEMP_FILE_LIMIT", default="256MB")
ANALYTICS_CONNECT_TIMEOUT_S = env.int("ANALYTICS_CONNECT_TIMEOUT_S", default=3)
# A replica that answers when the primary cannot be connected to (not when a query fails).
ANALYTICS_FALLBACK_DATABASE_URL = env.str("ANALYTICS_FALLBACK_DATABASE_URL", default="")
# Analytics queries running at once (agents/tools/concurrency.py): per API key and in all. Keep
# the global one below the web workers (scripts/serve.sh: 2 per core), so queries never hold
# them all; the API answers 429 over either, a session's step waits up to ANALYTICS_SLOT_WAIT_S.
ANALYTICS_CONCURRENCY_PER_KEY = env.int("ANALYTICS_CONCURRENCY_PER_KEY", default=1)
ANALYTICS_CONCURRENCY_GLOBAL = env.int("ANALYTICS_CONCURRENCY_GLOBAL", default=2)
ANALYTICS_SLOT_WAIT_S = env.float("ANALYTICS_SLOT_WAIT_S", default=10.0)
# The vision agent (agents/tools/vision.py): the model that reads images (empty: LLM_MODEL) and
# what a request may carry. A request body is bounded by API_MAX_BODY_BYTES as well (base64 is
# 4/3 of the bytes): raise both together.
VISION_MODEL = env.str("VISION_MODEL", default="")
VISION_MAX_IMAGES = env.int("VISION_MAX_IMAGES", default=4)
VISION_MAX_IMAGE_BYTES = env.int("VISION_MAX_IMAGE_BYTES", default=1_500_000)
# Unset: the threshold calibrated for the embedding model (casebank.search.embeddings).
RETRIEVAL_VECTOR_THRESHOLD = (
    env.float("RETRIEVAL_VECTOR_THRESHOLD") if env.str("RETRIEVAL_VECTOR_THRESHOLD", default="") else None
)
RERANKER_MODEL = env.str("RERANKER_MODEL", default="")
SSE_KEEPALIVE_S = env.float("SSE_KEEPALIVE_S", default=15.0)
SSE_POLL_S = env.float("SSE_POLL_S", default=0.25)
# Session runners (`manage.py run_sessions`, docs/agents.md): when on, a posted session waits
# for a runner (woken by NOTIFY on PostgreSQL) instead of a django-q2 task.
AGENTS_RUNNER = env.bool("AGENTS_RUNNER", default=False)
AGENTS_RUNNER_CAPACITY = env.int("AGENTS_RUNNER_CAPACITY", default=300)
AGENTS_RUNNER_DB_THREADS = env.int("AGENTS_RUNNER_DB_THREADS", default=8)
# The agents' blocking work (SQL, search); the LLM calls themselves are awaited on the loop.
AGENTS_RUNNER_WORKER_THREADS = env.int("AGENTS_RUNNER_WORKER_THREADS", default=8)
# Connections of the runner's one AsyncOpenAI pool (0: one per session it may hold, its capacity).
AGENTS_RUNNER_LLM_CONNECTIONS = env.int("AGENTS_RUNNER_LLM_CONNECTIONS", default=0)
AGENTS_RUNNER_LEASE_S = env.float("AGENTS_RUNNER_LEASE_S", default=30.0)
AGENTS_RUNNER_POLL_S = env.float("AGENTS_RUNNER_POLL_S", default=0.1)
# Sessions one API key may have queued or running at once, by tier (0: no limit); a post past
# it is refused with 429 (docs/agents.md). Posts without a key (admin, commands) have none.
AGENTS_SESSIONS_PER_KEY = {
    "standard": env.int("AGENTS_SESSIONS_PER_KEY_STANDARD", default=20),
    "premium": env.int("AGENTS_SESSIONS_PER_KEY_PREMIUM", default=200),
}
# glibc malloc arenas in a runner (0: glibc's default of 8 per core). Each of its threads would
# otherwise grow an arena of its own, which the runner's RSS pays for.
AGENTS_RUNNER_MALLOC_ARENAS = env.int("AGENTS_RUNNER_MALLOC_ARENAS", default=2)
# Where clients read `GET /api/sessions/{id}/stream` (the ASGI server); named in the refusal the
# WSGI workers answer with. Empty: "the ASGI (SSE) port".
SSE_PUBLIC_URL = env.str("SSE_PUBLIC_URL", default="")

# LLM: any OpenAI-compatible endpoint. Without a key and a model the product runs on rules.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
LLM_MODEL = env.str("LLM_MODEL", default="")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=30.0)
# Shared by every process through the database (see reflection.llm.ratelimit).
LLM_CALLS_PER_MINUTE = env.int("LLM_CALLS_PER_MINUTE", default=5)
# Shown against the day's LLM spend on the admin dashboard (0 = no budget set); not enforced.
LLM_DAILY_BUDGET_USD = env.float("LLM_DAILY_BUDGET_USD", default=0.0)
# The admin dashboard's figures are computed at most once per this many seconds and shared by
# every replica through the layered cache; the page says when they were computed (0 = always now).
DASHBOARD_CACHE_SECONDS = env.int("DASHBOARD_CACHE_SECONDS", default=30)
LLM_RETRY_ATTEMPTS = env.int("LLM_RETRY_ATTEMPTS", default=3)
LLM_RETRY_BASE_SECONDS = env.float("LLM_RETRY_BASE_SECONDS", default=1.0)
LLM_RETRY_CAP_SECONDS = env.float("LLM_RETRY_CAP_SECONDS", default=60.0)
LLM_BREAKER_FAILURES = env.int("LLM_BREAKER_FAILURES", default=5)
LLM_BREAKER_RESET_SECONDS = env.float("LLM_BREAKER_RESET_SECONDS", default=60.0)
LLM_PRICE_INPUT_PER_1K = env.float("LLM_PRICE_INPUT_PER_1K", default=0.0)
LLM_PRICE_OUTPUT_PER_1K = env.float("LLM_PRICE_OUTPUT_PER_1K", default=0.0)

# An applied suggestion is judged once both sides of it have this many runs (docs/suggestions.md).
VERIFICATION_MIN_RUNS = env.int("VERIFICATION_MIN_RUNS", default=30)

# Experiments (docs/experiments.md): approving a suggestion serves the revised plan to a share of
# traffic beside the current one; the sequential rule promotes, rolls back or ends inconclusive.
# Off: approving applies the plan at once and verification compares before with after.
EXPERIMENTS_ENABLED = env.bool("EXPERIMENTS_ENABLED", default=True)
if env.str("EXPERIMENT_CANDIDATE_SHARE", default=""):
    raise ImproperlyConfigured("EXPERIMENT_CANDIDATE_SHARE was replaced by EXPERIMENT_RAMP (its first share is the canary's).")
# The canary's ramp: the shares of assignment keys served the candidate, step by step. 20 % limits
# who meets a bad plan while its first runs come in; 50 % then needs the fewest runs to decide
# (docs/experiments.md). One share: no ramp.
EXPERIMENT_RAMP = tuple(env.list("EXPERIMENT_RAMP", cast=float, default=[0.2, 0.5]))
if not EXPERIMENT_RAMP or not all(0 < share < 1 for share in EXPERIMENT_RAMP) or list(EXPERIMENT_RAMP) != sorted(
        set(EXPERIMENT_RAMP)):
    raise ImproperlyConfigured("EXPERIMENT_RAMP must be increasing shares between 0 and 1 (exclusive), e.g. 0.2,0.5.")
# A step advances at a look once its candidate arm has this many runs and the always-valid
# interval rules out a regression larger than the margin (rate points).
EXPERIMENT_RAMP_MIN_RUNS = env.int("EXPERIMENT_RAMP_MIN_RUNS", default=100)
EXPERIMENT_RAMP_MARGIN = env.float("EXPERIMENT_RAMP_MARGIN", default=0.1)
if EXPERIMENT_RAMP_MIN_RUNS < 1 or not 0 <= EXPERIMENT_RAMP_MARGIN < 1:
    raise ImproperlyConfigured("Need EXPERIMENT_RAMP_MIN_RUNS >= 1 and 0 <= EXPERIMENT_RAMP_MARGIN < 1.")
# Better candidates become current at once; False: they wait for a reviewer ("awaiting review").
EXPERIMENT_AUTO_PROMOTE = env.bool("EXPERIMENT_AUTO_PROMOTE", default=True)
EXPERIMENT_ALPHA = env.float("EXPERIMENT_ALPHA", default=0.05)
EXPERIMENT_MIN_RUNS_PER_ARM = env.int("EXPERIMENT_MIN_RUNS_PER_ARM", default=100)
EXPERIMENT_MAX_RUNS_PER_ARM = env.int("EXPERIMENT_MAX_RUNS_PER_ARM", default=5_000)
if not 0 < EXPERIMENT_ALPHA < 1 or not 1 <= EXPERIMENT_MIN_RUNS_PER_ARM <= EXPERIMENT_MAX_RUNS_PER_ARM:
    raise ImproperlyConfigured("Need 0 < EXPERIMENT_ALPHA < 1 and 1 <= EXPERIMENT_MIN_RUNS_PER_ARM <= EXPERIMENT_MAX_RUNS_PER_ARM.")

# Alerts (new suggestions, regressions): email to reviewers and an optional JSON webhook.
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
ALERT_WEBHOOK_ATTEMPTS = env.int("ALERT_WEBHOOK_ATTEMPTS", default=3)
ALERT_WEBHOOK_BACKOFF_SECONDS = env.float("ALERT_WEBHOOK_BACKOFF_SECONDS", default=1.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="caseloop@localhost")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# Reflection: decay half-life of the weighted success rate; raw logs older than the retention
# are rolled up into daily per-case summaries and deleted (30 days is also the floor, so the
# default 30-day analysis window always reads raw logs).
REFLECTION_HALF_LIFE_DAYS = env.float("REFLECTION_HALF_LIFE_DAYS", default=3.5)
if REFLECTION_HALF_LIFE_DAYS <= 0:
    raise ImproperlyConfigured("REFLECTION_HALF_LIFE_DAYS must be positive.")
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=30)
if LOG_RETENTION_DAYS < 30:
    raise ImproperlyConfigured("LOG_RETENTION_DAYS must be at least 30.")
# New logs for one case that start an early reflection run for it.
REFLECTION_EARLY_TRIGGER_LOGS = env.int("REFLECTION_EARLY_TRIGGER_LOGS", default=100)
# ... and at most one early run per case this often (a busy case passes 100 logs every second).
REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS = env.int("REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS", default=60)
if REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS < 1:
    raise ImproperlyConfigured("REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS must be at least 1.")
# Batches of at least this many cases scan errors on a second connection (PostgreSQL only).
REFLECTION_PARALLEL_MIN_CASES = env.int("REFLECTION_PARALLEL_MIN_CASES", default=1_000)
# A run snapshots the log this long ago: every log stamped before then has committed, because
# ingestion statements time out after 10 s (reflection.logs.services). Keep it well above that.
REFLECTION_INGEST_SETTLE_SECONDS = env.int("REFLECTION_INGEST_SETTLE_SECONDS", default=60)
if REFLECTION_INGEST_SETTLE_SECONDS < 30:
    raise ImproperlyConfigured("REFLECTION_INGEST_SETTLE_SECONDS must be at least 30.")

# OTLP trace ingestion (POST /v1/traces, docs/otlp.md). The body as sent, and once gunzipped
# (a small gzip body can inflate a thousandfold): both bounded before anything is parsed. Parsed
# protobuf takes up to ~26x its size (a body of empty attributes), so 8 MiB costs at most ~210 MB.
OTLP_MAX_BODY_BYTES = env.int("OTLP_MAX_BODY_BYTES", default=8 * 1024 * 1024)
OTLP_MAX_DECOMPRESSED_BYTES = env.int("OTLP_MAX_DECOMPRESSED_BYTES", default=8 * 1024 * 1024)
# Runs that carry no caseloop.case.id: agent name (gen_ai.agent.name, else the resource's
# service.name) -> case id, e.g. OTLP_AGENT_CASES="sql-agent=3f1c...,report-agent=9b2e...".
OTLP_AGENT_CASES = env.dict("OTLP_AGENT_CASES", default={})
for _agent, _case_id in OTLP_AGENT_CASES.items():
    try:
        uuid.UUID(_case_id)
    except ValueError:
        raise ImproperlyConfigured(f"OTLP_AGENT_CASES maps {_agent!r} to {_case_id!r}, which is not a case id.") from None

# CaseTerm's covering index (INCLUDE) is a PostgreSQL feature; SQLite just builds the key index.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# Every handler masks passwords, keys and tokens (config/log_redaction.py): exception text is
# written as raised, and a driver's error may quote DATABASE_URL with its password. Django's
# own "django" handlers (console in DEBUG, mail_admins) are replaced: it propagates to root.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "config.log_redaction.RedactSecrets"},
        "expected_refusals": {"()": "config.expected_refusals.ExpectedRefusals"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": env.str("SERVER_LOG_LEVEL", default="INFO"), "propagate": True},
        "django.request": {"handlers": [], "level": "INFO", "propagate": True, "filters": ["expected_refusals"]},
        "sentence_transformers": {"level": "WARNING"},
        # django-q2 leaves its logger's level alone when LOGGING gives it handlers (root's);
        # `make run` sets WARNING (INFO with CASELOOP_VERBOSE=1): a line per task buries the rest.
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="INFO")},
    },
}
