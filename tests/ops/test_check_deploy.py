"""`manage.py check --deploy` is clean with the documented production environment."""
from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def documented_env() -> dict[str, str]:
    """deploy/env.example, the file docs/deployment.md tells operators to copy."""
    env = {}
    for line in (ROOT / "deploy" / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # A directory of its own: a parent of the checkout (say /tmp, where CI may clone) would
    # contain STATIC_ROOT and trip caches.W002.
    stats_dir = tempfile.mkdtemp(prefix="caseloop-qstats-")
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "Q_STATS_DIR": stats_dir}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


def test_it_passes_the_deploy_checks_with_the_documented_environment():
    env = {**documented_env(), "DJANGO_SECRET_KEY": secrets.token_urlsafe(60)}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_it_fails_the_deploy_checks_with_development_defaults():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env={})
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016", "security.W009"):
        assert check in result.stderr, check


def test_it_fails_the_deploy_checks_with_the_placeholder_secret_key():
    """deploy/env.example copied unedited: its key is long enough for security.W009."""
    env = documented_env()
    assert env["DJANGO_SECRET_KEY"].startswith("change-me")
    result = _manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "caseloop.E001" in result.stderr and "security.W009" not in result.stderr
    # A real key beginning with the same letters by chance is not refused: only the prefix.
    real = _manage("check", "--deploy", "--fail-level", "WARNING",
                   env={**env, "DJANGO_SECRET_KEY": "change" + secrets.token_urlsafe(60)})
    assert real.returncode == 0, real.stderr


def test_the_documented_environment_names_every_service_by_its_host():
    env = documented_env()
    for name in ("DATABASE_URL", "REDIS_URL"):
        host = urlparse(env[name]).hostname
        assert host and host not in {"localhost", "127.0.0.1", "::1"}, name
    assert urlparse(env["DATABASE_URL"]).scheme == "postgres"
    assert urlparse(env["REDIS_URL"]).scheme == "redis"


def test_it_refuses_to_start_without_a_secret_key_in_production():
    env = {**documented_env(), "DJANGO_SECRET_KEY": ""}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr
