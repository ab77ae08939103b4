"""`/health/live` (liveness), `/health` (a status page) and `/health/ready` (readiness).

Liveness says only that the process answers: it touches no database, cache or queue, so an
outage of a shared service never makes Kubernetes restart every pod at once (restarting would
not fix it). Readiness takes a pod out of the load balancer while its database is unreachable
or migrations are pending (and, with `EMBEDDINGS_WARM_ON_START`, while the embedding model still
loads). All three are answered before host validation and the HTTPS
redirect (`config.probes`), since probes address the pod by IP over plain HTTP.

Unauthenticated and free of secrets: each part reports a status and a short reason, never a
URL, host or exception text. Only the parts named in `HEALTH_REQUIRED` (default: the database)
turn the answer into a 503; a Redis or worker outage is reported but does not make a load
balancer or Kubernetes restart web replicas that can still serve from the database.
"""
from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from casebank.search import embeddings

UP, DOWN, DEGRADED = "up", "down", "degraded"


def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as error:  # a health check reports failures, it never raises them
        result = {"status": DOWN, "reason": type(error).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database() -> dict[str, Any]:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": UP, "vendor": connections[DEFAULT_DB_ALIAS].vendor}


def check_cache() -> dict[str, Any]:
    alias = settings.CACHE_L2_ALIAS or "default"
    cache = caches[alias]
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client"):
        # django-redis: ping the server itself, since the shared alias ignores Redis errors.
        client.get_client(write=True).ping()
        return {"status": UP, "backend": "redis"}
    cache.set("health:probe", "1", 5)
    if cache.get("health:probe") != "1":
        return {"status": DOWN, "backend": "local", "reason": "write not readable"}
    return {"status": UP, "backend": "local"}


def check_queue() -> dict[str, Any]:
    from django_q.conf import Conf
    from django_q.status import Stat

    if Conf.SYNC:
        return {"status": UP, "mode": "sync", "clusters": 0, "workers": 0}
    # Clusters publish a heartbeat every few seconds with a short expiry: no stat, no cluster.
    clusters = [stat for stat in Stat.get_all() if stat is not None]
    workers = sum(len(stat.workers or []) for stat in clusters)
    if not clusters:
        return {"status": DOWN, "clusters": 0, "workers": 0, "reason": "no qcluster heartbeat"}
    if workers == 0:  # a cluster still starting, or stopping
        return {"status": DOWN, "clusters": len(clusters), "workers": 0, "reason": "no workers yet"}
    return {"status": UP, "clusters": len(clusters), "workers": workers}


def check_llm() -> dict[str, Any]:
    from reflection.llm import llm_breaker_state, llm_configured

    if not llm_configured():
        # Not a failure: without an LLM the product runs on rule-based suggestions.
        return {"status": UP, "configured": False}
    state = llm_breaker_state()
    return {"status": DOWN if state == "open" else UP, "configured": True, "breaker": state}


def check_embeddings() -> dict[str, Any]:
    """Whether this process holds the embedding model (reported with EMBEDDINGS_WARM_ON_START)."""
    if embeddings.is_loaded():
        return {"status": UP, "model": embeddings.model_label()}
    return {"status": DOWN, "reason": "embedding model loading"}


CHECKS = {"database": check_database, "cache": check_cache, "queue": check_queue, "llm": check_llm}


def _required() -> set[str]:
    return set(settings.HEALTH_REQUIRED)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    checks = {name: _timed(check) for name, check in CHECKS.items()}
    if settings.EMBEDDINGS_WARM_ON_START:
        checks["embeddings"] = _timed(check_embeddings)
    required = _required()
    failing = {name for name, result in checks.items() if result["status"] != UP}
    if failing & required:
        overall, code = DOWN, 503
    elif failing:
        overall, code = DEGRADED, 200
    else:
        overall, code = UP, 200
    for name, result in checks.items():
        result["required"] = name in required
    return JsonResponse({"status": overall, "checks": checks}, status=code)


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests; nothing else is checked."""
    return JsonResponse({"status": UP})


def pending_migrations() -> list[str]:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Ready to take traffic: the database answers and every migration is applied."""
    database = _timed(check_database)
    if database["status"] != UP:
        return JsonResponse({"status": DOWN, "checks": {"database": database}}, status=503)
    try:
        pending = pending_migrations()
    except Exception as error:
        return JsonResponse({"status": DOWN, "reason": type(error).__name__}, status=503)
    if pending:
        return JsonResponse(
            {"status": DOWN, "reason": "migrations pending", "pending_migrations": pending}, status=503
        )
    checks: dict[str, Any] = {"database": database}
    if settings.EMBEDDINGS_WARM_ON_START:
        # Warming at start (CasebankConfig.ready): take traffic once a search will not wait for it.
        checks["embeddings"] = check_embeddings()
        if checks["embeddings"]["status"] != UP:
            return JsonResponse({"status": DOWN, "reason": "embedding model loading"}, status=503)
    return JsonResponse({"status": UP, "checks": checks})
