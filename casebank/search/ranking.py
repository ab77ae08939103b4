"""Ordering retrieved cases: relevance first, the track record as a bounded adjustment.

Relevance is what the mode measures (cosine similarity, BM25, or the fused rank of both). A
case's track record then moves its score by at most `TRACK_RECORD_WEIGHT` of its relevance:

    p = (success_rate * runs + PRIOR_RUNS / 2) / (runs + PRIOR_RUNS)    Beta(5, 5) posterior mean
    score = relevance * (1 + TRACK_RECORD_WEIGHT * (2p - 1))

The posterior shrinks a short record towards 1/2, so a case with few runs barely moves, and a
case with no analysis (null success rate) does not move at all. With the weight at 0.006 the
largest swing between two cases is 1.2% of relevance, less than the 1.6% between a case ranked
first in both lists of a hybrid search and one ranked second in both (1/62 of the fused score):
the track record reorders near-ties (first in one list and second in the other, or the reverse)
and never a clear winner. A case in `warning` keeps the place its relevance gives it, and is
marked as a warning so that a planner reads it as one (issue #18: a 0.5 multiplier buried a
0.84-cosine match under a 0.28 one).
"""
from __future__ import annotations

from typing import Literal

TRACK_RECORD_WEIGHT = 0.006
PRIOR_RUNS = 10
# Below this success rate a case is a warning whatever its status (reflection flags it at the
# same boundary, SPEC section 4).
WARNING_BELOW = 0.5

Role = Literal["example", "warning"]


def track_record(success_rate: float | None, runs: int) -> float:
    """Posterior mean success under a Beta(PRIOR_RUNS/2, PRIOR_RUNS/2) prior; 1/2 without a record."""
    if success_rate is None or runs <= 0:
        return 0.5
    return (success_rate * runs + PRIOR_RUNS / 2) / (runs + PRIOR_RUNS)


def adjusted_score(relevance: float, *, success_rate: float | None, runs: int) -> float:
    return relevance * (1 + TRACK_RECORD_WEIGHT * (2 * track_record(success_rate, runs) - 1))


def role_of(*, status: str, success_rate: float | None) -> Role:
    """`warning` for a case in warning or with a failing record: shown to planners as what to avoid."""
    if status == "warning" or (success_rate is not None and success_rate < WARNING_BELOW):
        return "warning"
    return "example"
