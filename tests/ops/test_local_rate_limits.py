"""More than one process serving the API without a shared cache is refused at start (issue #17:
two workers without REDIS_URL let 200 of 300 requests through a 100/min key, with no warning)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks

from tests.bench.support import free_port

ROOT = django_settings.BASE_DIR
LOCAL = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SHARED = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}


def _gunicorn(workers: int, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    for name in ("REDIS_URL", "API_ALLOW_LOCAL_RATE_LIMITS"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{free_port()}",
         "-w", str(workers), "--config", "python:config.gunicorn"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_gunicorn_refuses_two_workers_without_redis():
    process = _gunicorn(2)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "Refusing to start: 2 processes would serve the API" in output
    assert "REDIS_URL" in output


def test_gunicorn_starts_one_worker_without_redis():
    process = _gunicorn(1)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=5)  # still serving
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _deploy_warnings() -> list[str]:
    return [message.id for message in run_checks(include_deployment_checks=True) if message.id == "caseloop.W002"]


def test_the_deploy_check_warns_about_several_processes_without_a_shared_cache(settings):
    settings.CACHES = {**settings.CACHES, **LOCAL}
    settings.WEB_WORKERS = 4
    assert _deploy_warnings() == ["caseloop.W002"]
    settings.WEB_WORKERS = 1
    assert _deploy_warnings() == []
    settings.WEB_WORKERS = 4
    settings.API_ALLOW_LOCAL_RATE_LIMITS = True
    assert _deploy_warnings() == []


def test_the_deploy_check_is_quiet_with_a_shared_cache(settings):
    settings.CACHES = {**settings.CACHES, **SHARED}
    settings.WEB_WORKERS = 4
    assert _deploy_warnings() == []
