"""Probes and the scraper reach the pod by IP over plain HTTP, under the production settings.

Kubelet sends `Host: <pod-ip>:8000`, Docker's HEALTHCHECK `Host: 127.0.0.1:8000`, neither over
TLS: with `DJANGO_ALLOWED_HOSTS` and `DJANGO_SECURE_SSL_REDIRECT` from `deploy/env.example`
they must still get an answer, while every other path keeps Django's host check and redirect.
"""
from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.ops.test_check_deploy import documented_env

PROBE_HOSTS = ("127.0.0.1:8000", "10.1.2.3:8000", "[fd00::1]:8000")


@pytest.fixture
def production_hosts():
    env = documented_env()
    assert env["DJANGO_SECURE_SSL_REDIRECT"] == "true"
    with override_settings(
        ALLOWED_HOSTS=env["DJANGO_ALLOWED_HOSTS"].split(","),
        SECURE_SSL_REDIRECT=True,
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
        DEBUG=False,
    ):
        yield env["DJANGO_ALLOWED_HOSTS"].split(",")[0]


@pytest.mark.django_db
@pytest.mark.parametrize("host", PROBE_HOSTS)
@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready", "/metrics"])
def test_it_answers_probes_addressed_to_the_pod_ip(production_hosts, path, host):
    response = Client().get(path, HTTP_HOST=host)
    assert response.status_code == 200, response.content[:300]


@pytest.mark.django_db
def test_it_still_refuses_unknown_hosts_and_plain_http_elsewhere(production_hosts):
    assert Client().get("/api/cases/", HTTP_HOST="10.1.2.3:8000").status_code == 400
    redirect = Client().get("/api/cases/", HTTP_HOST=production_hosts)
    assert redirect.status_code == 301
    assert redirect["Location"] == f"https://{production_hosts}/api/cases/"


def test_it_keeps_the_probe_paths_exact(production_hosts):
    # Only the probe paths skip the host check: a look-alike still meets it.
    assert Client().get("/health/live/extra", HTTP_HOST="10.1.2.3:8000").status_code == 400
    assert Client().get("/metricsx", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_liveness_needs_no_database(production_hosts):
    # No django_db mark: pytest-django refuses every database access in this test, so a
    # liveness probe that touched the database would fail here, as it would during an outage.
    response = Client().get("/health/live", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "up"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    # Readiness does need the database, so the same "outage" takes the pod out of rotation.
    assert Client().get("/health/ready", HTTP_HOST="10.1.2.3:8000").status_code == 503


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics"])
def test_it_answers_probes_on_the_asgi_server_too(production_hosts, path):
    """The SSE pods run uvicorn: the same middleware in its async form."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    response = async_to_sync(AsyncClient().get)(path, headers={"host": "10.1.2.3:8001"})
    assert response.status_code == 200
