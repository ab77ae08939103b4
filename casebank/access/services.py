"""API keys: creating them (only a hash is stored), cached lookups for authentication, and the
writes that must forget them.

Every API request authenticates, and a database round trip per request was the largest single
cost of a small read under load (docs/benchmarks.md). A key found active is cached in the
layered cache for `API_KEY_CACHE_SECONDS` (default 10; 0 turns caching off). Revoking,
editing or deleting a key through these functions or the admin drops it from this process and
from Redis at once; another replica's local memory may accept it until its entry expires, so a
revoked key stops working everywhere within `API_KEY_CACHE_SECONDS`. Unknown keys are never
cached: a typo costs a query, and nobody can fill the cache with garbage.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from casebank.access.models import ApiKey, ApiTier
from casebank.access.scopes import ALL_SCOPES, DEFAULT_SCOPES, unknown_scopes
from core.cache import layered_delete, layered_get, layered_set
from core.errors import Conflict, InvalidInput

_CACHE_PREFIX = "casebank:api_key:"
# Writing last_used_at on every request would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _ttl() -> int:
    return int(settings.API_KEY_CACHE_SECONDS)


def api_key_forget(*, key_hash: str) -> None:
    layered_delete(_CACHE_PREFIX + key_hash)


def _forget_now_and_after_commit(key_hash: str) -> None:
    api_key_forget(key_hash=key_hash)
    # Again after the commit: a request between the first delete and the commit re-cached the old row.
    transaction.on_commit(lambda: api_key_forget(key_hash=key_hash))


def api_key_active(*, plain_key: str, on_miss: Callable[[], None] | None = None) -> ApiKey | None:
    """The active key (with its user) for a plain key, or `None` if unknown, revoked or its
    user is deactivated. Records when the key was last used, at most once a minute. `on_miss`
    runs before the database is asked (authentication refuses an address there that keeps failing)."""
    key_hash = hash_api_key(plain_key)
    ttl = _ttl()
    # l1_seconds: a copy taken from Redis must not outlive the bound in this process's memory
    # either (it lived CACHE_L1_SECONDS, 30 s, so a revoked key worked for ~22 s on other workers).
    api_key: ApiKey | None = layered_get(_CACHE_PREFIX + key_hash, l1_seconds=ttl) if ttl > 0 else None
    cached = api_key is not None
    if api_key is None:
        if on_miss is not None:
            on_miss()
        api_key = ApiKey.objects.select_related("user").filter(key_hash=key_hash, is_active=True).first()
        if api_key is None or not api_key.user.is_active:
            return None
    now = timezone.now()
    stale = api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION
    if stale:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    if ttl > 0 and (stale or not cached):
        layered_set(_CACHE_PREFIX + key_hash, api_key, ttl)
    return api_key


def clean_scopes(scopes: Iterable[str]) -> list[str]:
    """`scopes` checked against `Scope`, each once, in the Scope order; InvalidInput names the valid ones."""
    wanted = list(scopes)
    unknown = unknown_scopes(wanted)
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s): {', '.join(unknown)}. Valid scopes: {', '.join(ALL_SCOPES)}.",
            errors={"scopes": [f"One of {list(ALL_SCOPES)}."]},
        )
    return [scope for scope in ALL_SCOPES if scope in wanted]


def api_key_update(
    *, api_key: ApiKey, name: str, tier: str, user: Any, is_active: bool, scopes: Iterable[str] | None = None
) -> ApiKey:
    """Edit a key; `scopes=None` keeps its scopes. The cached copy is dropped at once."""
    api_key.name, api_key.tier, api_key.user, api_key.is_active = name, tier, user, is_active
    if scopes is not None:
        api_key.scopes = clean_scopes(scopes)
    api_key.full_clean(exclude=["scopes"])  # checked by clean_scopes; an empty list is a valid (useless) key
    api_key.save(update_fields=["name", "tier", "user", "is_active", "scopes"])
    _forget_now_and_after_commit(api_key.key_hash)
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    return api_key_update(
        api_key=api_key, name=api_key.name, tier=api_key.tier, user=api_key.user, is_active=False
    )


def api_key_delete(*, api_key: ApiKey) -> None:
    key_hash = api_key.key_hash
    api_key.delete()
    _forget_now_and_after_commit(key_hash)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(
    *, name: str, tier: str = ApiTier.STANDARD, user: Any = None, scopes: Iterable[str] | None = None
) -> tuple[ApiKey, str]:
    """Create a key for a client and return it with the plain key, which is never stored.

    `scopes` default to `DEFAULT_SCOPES` (an agent's: send logs, read cases, run sessions)."""
    chosen = clean_scopes(DEFAULT_SCOPES if scopes is None else scopes)
    if tier not in ApiTier.values:
        raise InvalidInput("Invalid tier.", errors={"tier": [f"One of {ApiTier.values}."]})
    if not name or len(name) > 100:
        raise InvalidInput("Invalid name.", errors={"name": ["1 to 100 characters."]})
    if ApiKey.objects.filter(name=name).exists():
        raise Conflict(f'An API key named "{name}" already exists.')
    plain = "cl_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        if user is None:
            user, _ = get_user_model().objects.get_or_create(
                username=f"api-{name}"[:150], defaults={"is_active": True}
            )
            if user.has_usable_password():
                user.set_unusable_password()
                user.save(update_fields=["password"])
        api_key = ApiKey(
            name=name, user=user, prefix=plain[:10], key_hash=hash_api_key(plain), tier=tier, scopes=chosen
        )
        api_key.full_clean(exclude=["scopes"])  # checked by clean_scopes; an empty list is a valid (useless) key
        api_key.save()
    return api_key, plain
