from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture(params=["sqlite", "postgres"])
def dialect(request) -> str:
    """The demo analytics database on SQLite, then on PostgreSQL (skipped on the SQLite pass)."""
    if request.param == "postgres":
        request.getfixturevalue("pg_demo_analytics")
    else:
        request.getfixturevalue("analytics_db")
    return request.param


@pytest.fixture
def caller(api_key) -> APIClient:
    """A keyed client that shows a crash as the 500 a client would see."""
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_key[1]}")
    return client
