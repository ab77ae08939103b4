"""Per-API-key rate limits by tier, counted in the shared cache so every replica agrees.

The rates live in `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` under the tier names
(`standard`, `premium`) and are read per request, so `override_settings` and the environment
(`API_RATE_STANDARD`, `API_RATE_PREMIUM`) both take effect without re-importing this module.
"""
from __future__ import annotations

from typing import Any

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from casebank.models import ApiKey, ApiTier

DEFAULT_RATES = {ApiTier.STANDARD.value: "100/min", ApiTier.PREMIUM.value: "1000/min", "anon": "60/min"}


def rate_for(scope: str) -> str | None:
    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    return rates.get(scope, DEFAULT_RATES.get(scope))


class ApiKeyTierThrottle(SimpleRateThrottle):
    """100 requests/min for a standard key, 1,000 for a premium one; requests without a key
    (only the schema and docs allow those) are limited per client address."""

    scope = "anon"

    def __init__(self) -> None:
        # SimpleRateThrottle resolves the rate in __init__ from a class attribute bound at
        # import; the rate depends on the request here, so it is resolved in allow_request.
        self.rate = None
        self.num_requests, self.duration = None, None

    def allow_request(self, request: Any, view: Any) -> bool:
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        self.scope = api_key.tier if api_key is not None else "anon"
        self.rate = rate_for(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Any, view: Any) -> str:
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        # The key digest, not the primary key: ids are reused after a rollback, digests are not.
        ident = api_key.key_hash if api_key is not None else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
