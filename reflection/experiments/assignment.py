"""Deterministic arm assignment: which version of a plan a request or session runs.

The same key (a session id, a request id, an agent's conversation id) always gets the same arm
of the same experiment, on every replica and after restarts, with no stored state: the arm is
read off a hash of the experiment and the key. Different experiments hash differently, so a
session that is in one canary is not more likely to be in the next.
"""
from __future__ import annotations

import enum
import hashlib

# Shares are resolved to 1/10,000 (0.01 %).
RESOLUTION = 10_000


class Arm(enum.StrEnum):
    CURRENT = "current"
    CANDIDATE = "candidate"


def assignment_point(*, experiment: str, key: str) -> int:
    """Where `key` falls in [0, RESOLUTION) for this experiment: uniform over keys."""
    digest = hashlib.sha256(f"{experiment}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % RESOLUTION


def assign_arm(*, experiment: str, key: str, candidate_share: float) -> Arm:
    """`candidate` for a `candidate_share` of keys (0..1), `current` for the rest.

    Ramping the share up (20 % then 50 %) keeps every key already in the candidate arm there:
    a key's point does not move, only the boundary does.
    """
    if not 0 <= candidate_share <= 1:
        raise ValueError("candidate_share must be between 0 and 1.")
    boundary = round(candidate_share * RESOLUTION)
    return Arm.CANDIDATE if assignment_point(experiment=experiment, key=key) < boundary else Arm.CURRENT
