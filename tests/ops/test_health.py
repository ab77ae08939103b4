from __future__ import annotations

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_it_reports_each_part_without_a_key(anonymous_api):
    response = anonymous_api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "up"
    assert set(body["checks"]) == {"database", "cache", "queue", "llm"}
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["database"]["required"] is True
    assert body["checks"]["cache"]["status"] == "up"
    # Test settings run tasks inline, so the queue has no cluster to wait for.
    assert body["checks"]["queue"]["mode"] == "sync"


@override_settings(OPENAI_API_KEY="", LLM_MODEL="")
def test_it_reports_an_unconfigured_llm_as_up_and_unconfigured(anonymous_api):
    llm = anonymous_api.get("/health").json()["checks"]["llm"]
    assert llm == {**llm, "status": "up", "configured": False}


@override_settings(OPENAI_API_KEY="sk-health-test", LLM_MODEL="gpt-test", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
def test_it_reports_the_llm_breaker_state(anonymous_api):
    llm = anonymous_api.get("/health").json()["checks"]["llm"]
    assert llm["configured"] is True and llm["breaker"] in {"closed", "half_open", "open"}


def test_it_answers_503_when_a_required_part_is_down(anonymous_api, monkeypatch, settings, tmp_path):
    from django_q.conf import Conf

    # A real cluster check on an empty heartbeat store: no qcluster publishes to this one.
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CACHE", "q_stats_test")
    settings.CACHES = {
        **settings.CACHES,
        "q_stats_test": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)},
    }
    with override_settings(HEALTH_REQUIRED=["database"]):
        degraded = anonymous_api.get("/health")
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["checks"]["queue"]["status"] == "down"
    with override_settings(HEALTH_REQUIRED=["database", "queue"]):
        down = anonymous_api.get("/health")
    assert down.status_code == 503
    assert down.json()["status"] == "down"


def test_it_is_ready_when_every_migration_is_applied(anonymous_api):
    response = anonymous_api.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "up"


def test_it_is_not_ready_while_a_migration_is_pending(anonymous_api):
    recorder = MigrationRecorder.Migration.objects
    latest = recorder.filter(app="casebank").order_by("-id").first()
    latest.delete()
    response = anonymous_api.get("/health/ready")
    assert response.status_code == 503
    assert f"casebank.{latest.name}" in response.json()["pending_migrations"]


def test_it_is_never_cached(anonymous_api):
    response = anonymous_api.get("/health")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
