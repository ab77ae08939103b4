from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from rest_framework.test import APIClient

from casebank.access import services as access_services
from casebank.access.throttling import ApiKeyTierThrottle
from casebank.models import ApiTier

pytestmark = pytest.mark.django_db
# 30 s into a one-minute window, so no test run straddles a window boundary by chance.
WINDOW_START = 29_000_000 * 60.0


class Clock:
    now = WINDOW_START + 30.0


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> type[Clock]:
    Clock.now = WINDOW_START + 30.0
    monkeypatch.setattr(ApiKeyTierThrottle, "timer", staticmethod(lambda: Clock.now))
    return Clock


@pytest.fixture(autouse=True)
def _fresh_counters():
    caches["default"].clear()
    yield
    caches["default"].clear()


def _rates(**rates: str):
    return override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates})


def _client(name: str, tier: str = ApiTier.STANDARD) -> APIClient:
    _, plain = access_services.api_key_create(name=name, tier=tier)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def _statuses(client: APIClient, count: int) -> list[int]:
    return [client.get("/api/cases/").status_code for _ in range(count)]


def test_it_allows_a_standard_key_100_requests_a_minute_by_default():
    client = _client("standard-default")
    assert _statuses(client, 100) == [200] * 100
    response = client.get("/api/cases/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 30  # the window ends 30 s from now
    assert response.json()["detail"] and response.json()["errors"] == {}


def test_a_new_window_starts_a_new_count(clock):
    with _rates(standard="2/min", premium="2/min", anon="1/min"):
        client = _client("windows")
        assert _statuses(client, 3) == [200, 200, 429]
        clock.now = WINDOW_START + 59.5
        assert int(client.get("/api/cases/")["Retry-After"]) == 1
        clock.now = WINDOW_START + 60.0
        assert _statuses(client, 3) == [200, 200, 429]


def test_it_gives_each_tier_its_own_rate():
    with _rates(standard="3/min", premium="6/min", anon="1/min"):
        standard = _client("standard", ApiTier.STANDARD)
        premium = _client("premium", ApiTier.PREMIUM)
        assert _statuses(standard, 4) == [200, 200, 200, 429]
        assert _statuses(premium, 7) == [200] * 6 + [429]


def test_it_counts_each_key_separately():
    with _rates(standard="2/min", premium="2/min", anon="1/min"):
        first, second = _client("first"), _client("second")
        assert _statuses(first, 3) == [200, 200, 429]
        assert _statuses(second, 2) == [200, 200]


def test_it_keeps_the_counters_in_the_shared_cache():
    with _rates(standard="2/min", premium="2/min", anon="1/min"):
        client = _client("shared")
        _statuses(client, 3)
    keys = [key for key in caches["default"]._cache if "throttle_standard_" in key]
    assert len(keys) == 1


def test_it_reads_rates_from_the_environment(monkeypatch):
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['premium'])"
    )
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "API_RATE_PREMIUM": "5000/min", "PATH": "/usr/bin:/bin"}
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "5000/min"
