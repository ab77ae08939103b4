"""One Redis client per URL for the few direct uses of Redis (runner doorbell, LLM budgets);
the caches and the queue have their own through django-redis and django-q2."""
from __future__ import annotations

from functools import lru_cache

import redis


@lru_cache(maxsize=4)
def redis_for(url: str) -> redis.Redis:
    # Short timeouts: callers fall back (polling, the database) when Redis does not answer.
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
