"""A revoked key stops working on every worker within `API_KEY_CACHE_SECONDS` (issue #17: the
copy another worker took from Redis lived `CACHE_L1_SECONDS`, 30 s, so a revoked key worked for
up to ~22 s against a documented 10 s).

Two workers are two process-memory caches (L1) in front of the same real Redis (L2).
"""
from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from casebank.access import services as access_services

pytestmark = pytest.mark.django_db
BOUND = 2  # API_KEY_CACHE_SECONDS for the test, far below CACHE_L1_SECONDS


def test_a_revoked_key_stops_on_another_worker_within_the_bound(settings, layered_on_redis, api_key):
    settings.CACHES = {
        **settings.CACHES,
        "l1_worker_b": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l1-worker-b"},
    }
    settings.API_KEY_CACHE_SECONDS = BOUND
    settings.CACHE_L1_SECONDS = 30
    key, plain = api_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")

    settings.CACHE_L1_ALIAS = "l1"  # worker A: looks the key up, caches it in its memory and Redis
    assert client.get("/api/cases/").status_code == 200
    settings.CACHE_L1_ALIAS = "l1_worker_b"  # worker B: takes its copy from Redis
    assert client.get("/api/cases/").status_code == 200

    settings.CACHE_L1_ALIAS = "l1"  # revoked on worker A (its admin)
    access_services.api_key_revoke(api_key=key)
    assert client.get("/api/cases/").status_code == 401

    settings.CACHE_L1_ALIAS = "l1_worker_b"
    time.sleep(BOUND + 0.5)
    assert client.get("/api/cases/").status_code == 401
