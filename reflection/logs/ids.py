"""Time-ordered ids for execution logs (UUID version 7, RFC 9562).

Random (version 4) primary keys land all over the index, so every insert touches a different
leaf page; version 7 ids begin with the time in milliseconds, so a batch of new logs appends
to the right edge of the index. Ingestion gives one to every log sent without an id; clients
that set their own ids for safe retries should use version 7 too (docs/architecture.md).
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid

_VERSION_7 = 0x7000
_VARIANT_RFC = 0x8000


def uuid7() -> uuid.UUID:
    """48 bits of Unix milliseconds, then version, 74 random bits and the RFC variant."""
    return _compose(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))


def uuid7_derived(*, millis: int, key: bytes) -> uuid.UUID:
    """A version 7 id whose 74 "random" bits are a hash of `key`: the same run sent twice (an
    OTLP exporter's retry, keyed by trace and span id) gets the same id, so it is stored once,
    and ids still begin with the run's time, so they append to the index like `uuid7`'s."""
    return _compose(millis, int.from_bytes(hashlib.blake2b(key, digest_size=10).digest(), "big"))


def _compose(millis: int, random_bits: int) -> uuid.UUID:
    millis &= 0xFFFF_FFFF_FFFF  # 48 bits: the year 10889 wraps; a range check comes first anyway
    rand_a = (random_bits >> 64) & 0x0FFF
    rand_b = random_bits & 0x3FFF_FFFF_FFFF_FFFF
    value = (millis << 80) | ((_VERSION_7 | rand_a) << 64) | (_VARIANT_RFC << 48) | rand_b
    return uuid.UUID(int=value)
