"""Client-made log ids: UUID version 7, as the server's own (reflection/logs/ids.py).

Each log gets its id when it is recorded, so a batch re-sent after a lost response is stored
once: the server skips ids it already holds. Version 7 ids begin with the time, so the server's
index takes them in order.
"""
from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7000
_VARIANT_RFC = 0x8000


def uuid7() -> uuid.UUID:
    """48 bits of Unix milliseconds, then version, 74 random bits and the RFC variant."""
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    rand_a = (random_bits >> 64) & 0x0FFF
    rand_b = random_bits & 0x3FFF_FFFF_FFFF_FFFF
    value = (millis << 80) | ((_VERSION_7 | rand_a) << 64) | (_VARIANT_RFC << 48) | rand_b
    return uuid.UUID(int=value)
