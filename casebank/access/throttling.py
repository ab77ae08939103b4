"""Per-API-key rate limits by tier, counted in the shared cache so every replica agrees.

The rates live in `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` under the tier names
(`standard`, `premium`) and are read per request, so `override_settings` and the environment
(`API_RATE_STANDARD`, `API_RATE_PREMIUM`) both take effect without re-importing this module.

Counting is a fixed window with one atomic increment (Redis `INCR`) per request. DRF's default
keeps a list of every request's time and writes it back whole: O(rate) bytes per request, and
two replicas reading the same list at once both write back one request fewer than they saw, so
a client could exceed its limit. The price of a fixed window is a burst of up to twice the rate
across a window boundary, which is the usual trade (GitHub's API counts the same way).
"""
from __future__ import annotations

import logging
import math
from typing import Any

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from casebank.models import ApiKey, ApiTier

logger = logging.getLogger(__name__)
DEFAULT_RATES = {
    ApiTier.STANDARD.value: "100/min", ApiTier.PREMIUM.value: "1000/min", "anon": "60/min", "failed_auth": "30/min",
}


def rate_for(scope: str) -> str | None:
    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    return rates.get(scope, DEFAULT_RATES.get(scope))


class ApiKeyTierThrottle(SimpleRateThrottle):
    """100 requests/min for a standard key, 1,000 for a premium one; requests without a key
    (only failed authentications reach here) are limited per client address."""

    scope = "anon"

    def __init__(self) -> None:
        # SimpleRateThrottle resolves the rate in __init__ from a class attribute bound at
        # import; the rate depends on the request here, so it is resolved in allow_request.
        self.rate = None
        self.num_requests, self.duration = None, None
        self.window_ends = 0.0

    def allow_request(self, request: Any, view: Any) -> bool:
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        self.scope = api_key.tier if api_key is not None else "anon"
        self.rate = rate_for(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        count = self._count(f"{self.get_cache_key(request, view)}:{window}")
        if count is None:  # the cache is down: serve rather than refuse everyone
            return True
        return count <= self.num_requests

    def _count(self, key: str) -> int | None:
        """This request's number in its window; `None` when the cache cannot count."""
        timeout = self.duration + 1  # the key outlives its window, never the other way round
        try:
            try:
                count = self.cache.incr(key)
            except ValueError:  # first request of the window
                if self.cache.add(key, 1, timeout):
                    return 1
                count = self.cache.incr(key)  # another process added it first
        except Exception as error:  # any transport error: throttling must never fail a request
            logger.warning("Rate-limit counters unavailable, not throttling: %s", type(error).__name__)
            return None
        # django-redis returns None instead of raising when told to ignore a dead Redis.
        return int(count) if count is not None else None

    def wait(self) -> float:
        return max(1, math.ceil(self.window_ends - self.now))

    def get_cache_key(self, request: Any, view: Any) -> str:
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        # The key digest, not the primary key: ids are reused after a rollback, digests are not.
        ident = api_key.key_hash if api_key is not None else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class FailedAuthenticationThrottle(ApiKeyTierThrottle):
    """Failed authentications per client address (`failed_auth` rate, 30/min by default).

    A request with a wrong key fails in authentication, before DRF's throttles run, so guessing
    was unlimited and each guess cost a database lookup (issue #17: 1,000 random keys in 2.3 s,
    1,000 × 401). Each failure is counted here; an address over the rate gets 429 before its key
    is even looked up, while valid keys (found in the key cache) never touch this counter.
    """

    scope = "failed_auth"

    def _window_key(self, request: Any) -> tuple[str, int] | None:
        """This window's counter for the request's address, and the failures it allows."""
        rate = rate_for(self.scope)
        limit, seconds = self.parse_rate(rate) if rate else (None, None)
        if limit is None or seconds is None:
            return None
        self.now = self.timer()
        window = int(self.now // seconds)
        self.window_ends = (window + 1) * seconds
        self.duration = seconds  # type: ignore[assignment]  # _count() reads it for the key's timeout
        return f"{self.cache_format % {'scope': self.scope, 'ident': self.get_ident(request)}}:{window}", limit

    def blocked(self, request: Any) -> bool:
        """Whether this address has used up its failures for the window (nothing counted)."""
        counter = self._window_key(request)
        if counter is None:
            return False
        key, limit = counter
        try:
            count = self.cache.get(key)
        except Exception as error:  # the cache is down: authenticate rather than refuse everyone
            logger.warning("Failed-authentication counters unavailable: %s", type(error).__name__)
            return False
        return count is not None and int(count) >= limit

    def record_failure(self, request: Any) -> bool:
        """Count one failure; whether the address is still within its rate."""
        counter = self._window_key(request)
        if counter is None:
            return True
        key, limit = counter
        count = self._count(key)
        return count is None or count <= limit
