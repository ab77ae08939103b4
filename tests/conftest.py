from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from rest_framework.test import APIClient

from casebank.access import services as access_services
from casebank.access.scopes import ALL_SCOPES, DEFAULT_SCOPES
from casebank.cases import services as case_services
from casebank.models import Case

# What the `api` key's user may do: edit the case bank and read every log, as in admin.
# Consolidation and suggestion permissions are left to the tests that grant them (and test
# their refusal).
API_USER_PERMISSIONS = ("add_case", "change_case", "rollback_case", "review_case", "view_executionlog")


@pytest.fixture
def api_key(db):
    """A standard-tier key with every scope, for a service user who edits cases and reads every
    log (`API_USER_PERMISSIONS`). Scope and ownership tests make narrower keys with `api_client`."""
    key, plain = access_services.api_key_create(name="test-client", scopes=ALL_SCOPES)
    grant(key.user, *API_USER_PERMISSIONS)
    return key, plain


@pytest.fixture
def api(api_key) -> APIClient:
    """An API client authenticated with `api_key`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_key[1]}")
    return client


@pytest.fixture
def api_client(db) -> Callable[..., APIClient]:
    """`api_client(scopes=[...], user=None, permissions=[...])`: a client with a key of its own.

    By default the key has the agent scopes (DEFAULT_SCOPES) and a new service user with no
    permission; `client.api_key` is the key."""
    made = iter(range(1, 10_000))

    def make(*, scopes=DEFAULT_SCOPES, user=None, permissions=(), name: str | None = None) -> APIClient:
        key, plain = access_services.api_key_create(
            name=name or f"client-{next(made)}", user=user, scopes=list(scopes)
        )
        grant(key.user, *permissions)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
        client.api_key = key  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def anonymous_api() -> APIClient:
    return APIClient()


@pytest.fixture
def make_case(db) -> Callable[..., Case]:
    def make(**overrides) -> Case:
        fields = {
            "title": "Monthly revenue by region",
            "query": "Show monthly revenue by region for the last quarter",
            "plan": [{"agent": "data_analysis", "action": "SQL aggregate by month and region"}],
            "category": "analytics/sales",
            "tags": ["sql", "revenue"],
            "actor": "tester",
        }
        fields.update(overrides)
        return case_services.case_create(**fields)

    return make


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw")


@pytest.fixture
def admin_client_logged_in(client, superuser):
    client.force_login(superuser)
    return client


def pytest_collection_modifyitems(config, items) -> None:
    """`@pytest.mark.postgres(reason=...)`: PostgreSQL-only paths (plans, concurrent writers) are
    skipped, with their reason, on the SQLite pass; `make test`'s PostgreSQL pass runs them."""
    if connection.vendor == "postgresql":
        return
    for item in items:
        marker = item.get_closest_marker("postgres")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL only: {marker.kwargs.get('reason', 'PostgreSQL path')}"))


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


# The personas of the admin tests, one definition each: a reviewer holds the real Reviewers role
# (core.roles, what `setup_roles` grants), an onlooker is staff who may only look at the queues.
ONLOOKER_PERMISSIONS = ("view_case", "view_pendingcase", "view_suggestion", "view_pendingsuggestion")


@pytest.fixture
def reviewer(django_user_model):
    from django.contrib.auth.models import Group

    from core.roles import REVIEWERS, roles_setup

    roles_setup()
    user = django_user_model.objects.create_user("reviewer", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=REVIEWERS))
    return user


@pytest.fixture
def onlooker(django_user_model):
    user = django_user_model.objects.create_user("onlooker", password="pw", is_staff=True)
    grant(user, *ONLOOKER_PERMISSIONS)
    return user


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    """Tasks handed to the queue, captured instead of run: `[(task path, *args), ...]`."""
    captured: list[tuple] = []
    monkeypatch.setattr("core.task_queue.async_task", lambda *args, **kwargs: captured.append(args))
    return captured


@pytest.fixture
def redis_server(tmp_path):
    """A throwaway redis-server of our own (`tests.support.redis_server.RedisServer`)."""
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_queue(redis_server, monkeypatch):
    """django-q2 on the Redis broker, as in production: `async_task` pushes to our redis-server
    and nothing consumes it until a test pops the tasks (`tests.support.redis_server`).
    Yields (server, broker). The test settings' sync mode is read at import, hence the patch."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    from core import task_queue

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
    monkeypatch.setattr(Conf, "REDIS", redis_server.url)
    task_queue.reset_broker_backoff()
    broker = get_broker()
    yield redis_server, broker
    task_queue.reset_broker_backoff()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """One migrated database of the suite's kind (a SQLite file, or a database on the suite's
    PostgreSQL server), which each test that runs the product in other processes copies:
    migrating costs seconds a test, copying not (`tests.ops.qcluster_support.cluster_database`)."""
    from tests.ops.qcluster_support import cluster_database, cluster_env, manage

    base = tmp_path_factory.mktemp("migrated-template")
    with cluster_database(base) as database:
        manage(cluster_env(base, database, timeout=3, retry=4), "migrate", "--noinput", "-v", "0")
        yield database


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_report_header(config) -> str:
    from django.conf import settings

    return f"database: {settings.DATABASES['default']['ENGINE']}"


@pytest.fixture
def openai_server():
    """A real local HTTP server speaking the Chat Completions protocol, with scripted replies."""
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


@pytest.fixture
def llm_settings(settings, openai_server, db):
    """Point the LLM client at `openai_server` (fast retries) with a closed circuit breaker."""
    from reflection.llm.breaker import CircuitBreaker
    from tests.support.openai_server import point_llm_at

    point_llm_at(settings, openai_server)
    CircuitBreaker("llm", failures=5, reset_seconds=60).reset()
    yield settings
    CircuitBreaker("llm", failures=5, reset_seconds=60).reset()


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Cached corpus statistics, throttle counters and the like must not leak between tests."""
    from django.conf import settings
    from django.core.cache import caches

    for alias in settings.CACHES:
        caches[alias].clear()
    yield


@pytest.fixture
def layered_on_redis(settings, redis_server):
    """The production cache layout (L1 memory in front of L2 Redis) on the throwaway redis-server."""
    from core import cache as layered_cache

    url = redis_server.url
    options = {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url,
                    "OPTIONS": {**options, "IGNORE_EXCEPTIONS": True}},
        "l2": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "OPTIONS": options},
        "l1": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l1-redis-test"},
    }
    settings.CACHE_L2_ALIAS = "l2"
    settings.CACHE_L2_RETRY_SECONDS = 60
    layered_cache.reset_l2_backoff()
    yield redis_server, redis_server.client
    layered_cache.reset_l2_backoff()


@pytest.fixture
def experiments_off(settings) -> None:
    """Approval applies the revised plan at once and verification compares before with after
    (`EXPERIMENTS_ENABLED = False`): the tests of that mode."""
    settings.EXPERIMENTS_ENABLED = False
