"""Issue #14/#19: with EMBEDDINGS_WARM_ON_START the web process loads the embedding model as it
starts, and `/health/ready` (what `make run` waits for before its banner) says so; the first
search then finds it loaded (it took 7.4 s when the model loaded on demand)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.apps import apps
from django.conf import settings

from casebank.search import embeddings
from tests.ops.qcluster_support import ROOT, cluster_database


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _serve_until_ready(database_url: str, *, warm: bool) -> tuple[list[dict], dict]:
    """A real `runserver` on a migrated database of its own (the warm-up does not depend on the
    database): every answer of /health/ready until the first 200, and that one."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
           "EMBEDDINGS_WARM_ON_START": "1" if warm else "0", "DJANGO_SECRET_KEY": settings.SECRET_KEY}
    port = _free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    refusals: list[dict] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                status, body = _ready(f"http://127.0.0.1:{port}/health/ready")
            except OSError:  # not listening yet
                time.sleep(0.2)
                continue
            if status == 200:
                return refusals, body
            refusals.append(body)
            time.sleep(0.2)
        pytest.fail(f"/health/ready never answered 200: {refusals[-3:]}")
    finally:
        server.terminate()
        server.wait(timeout=20)
    raise AssertionError("unreachable")


def test_the_web_server_is_ready_only_with_the_model_loaded(tmp_path, migrated_template):
    with cluster_database(tmp_path, template=migrated_template) as database:
        refusals, body = _serve_until_ready(database.url, warm=True)
    assert body["checks"]["embeddings"] == {"status": "up", "model": embeddings.model_label()}
    # While it loaded (cold torch import + model: seconds), readiness said why it was not ready.
    assert all(r == {"status": "down", "reason": "embedding model loading"} for r in refusals)


def test_without_the_setting_readiness_does_not_wait_for_the_model(tmp_path, migrated_template):
    with cluster_database(tmp_path, template=migrated_template) as database:
        refusals, body = _serve_until_ready(database.url, warm=False)
    assert "embeddings" not in body["checks"] and refusals == []


@pytest.mark.django_db
def test_the_app_loads_the_model_at_start_when_asked_and_not_otherwise(settings):
    embeddings._load_model.cache_clear()
    try:
        settings.EMBEDDINGS_WARM_ON_START = False
        apps.get_app_config("casebank").ready()
        time.sleep(0.5)
        assert not embeddings.is_loaded()
        settings.EMBEDDINGS_WARM_ON_START = True
        apps.get_app_config("casebank").ready()
        deadline = time.monotonic() + 120
        while not embeddings.is_loaded() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert embeddings.is_loaded()
    finally:
        embeddings.get_model()  # leave the model loaded for the tests after this one


@pytest.mark.django_db
def test_while_the_model_loads_ready_refuses_and_the_status_page_says_so(anonymous_api, settings):
    settings.EMBEDDINGS_WARM_ON_START = True
    embeddings._load_model.cache_clear()
    try:
        assert anonymous_api.get("/health/ready").status_code == 503
        status = anonymous_api.get("/health")
        # The status page stays 200 (what `make run` polls without logging errors), degraded.
        assert status.status_code == 200 and status.json()["status"] == "degraded"
        assert status.json()["checks"]["embeddings"]["reason"] == "embedding model loading"
    finally:
        embeddings.get_model()
    assert anonymous_api.get("/health/ready").json()["checks"]["embeddings"]["status"] == "up"
    assert anonymous_api.get("/health").json()["checks"]["embeddings"]["status"] == "up"
