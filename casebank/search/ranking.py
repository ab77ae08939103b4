"""Ordering retrieved cases: relevance first, the track record as a bounded adjustment.

Relevance is what the mode measures (cosine similarity, BM25, or the fused rank of both). A
case's track record is its reuse value: `helped` and `harmed`, the runs of its plan that
succeeded and failed, each weighted by its age (half-life REFLECTION_HALF_LIFE_DAYS; stored on
the case by every analysis, `Case.reuse_helped` / `reuse_harmed`). It moves the score by at
most `TRACK_RECORD_WEIGHT` of the relevance:

    p = (helped + PRIOR_RUNS / 2) / (helped + harmed + PRIOR_RUNS)    Beta(5, 5) posterior mean
    score = relevance * (1 + TRACK_RECORD_WEIGHT * (2p - 1))

The posterior shrinks a short or old record towards 1/2 (old runs weigh little), so a case
with few recent runs barely moves, and a case never run does not move at all. With the weight at 0.006 the
largest swing between two cases is 1.2% of relevance, less than the 1.6% between a case ranked
first in both lists of a hybrid search and one ranked second in both (1/62 of the fused score):
the track record reorders near-ties (first in one list and second in the other, or the reverse)
and never a clear winner. A case in `warning` keeps the place its relevance gives it, and is
marked as a warning so that a planner reads it as one (issue #18: a 0.5 multiplier buried a
0.84-cosine match under a 0.28 one).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Literal, TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60
# A vector list whose best hit stands out from the next nine by less than SIGNAL_FLOOR carries no
# ranking information (text the model does not read: Korean under the English-only MiniLM, whose
# cosines are all 0.75-0.9 there); from SIGNAL_FULL on it counts fully in the fusion.
SIGNAL_FLOOR = 0.05
SIGNAL_FULL = 0.15

TRACK_RECORD_WEIGHT = 0.006
PRIOR_RUNS = 10
# Below this success rate a case is a warning whatever its status (reflection flags it at the
# same boundary, SPEC section 4).
WARNING_BELOW = 0.5

Role = Literal["example", "warning"]


def track_record(helped: float, harmed: float) -> float:
    """Posterior mean success under a Beta(PRIOR_RUNS/2, PRIOR_RUNS/2) prior; 1/2 without a record."""
    helped, harmed = max(helped, 0.0), max(harmed, 0.0)
    return (helped + PRIOR_RUNS / 2) / (helped + harmed + PRIOR_RUNS)


def adjusted_score(relevance: float, *, helped: float, harmed: float) -> float:
    return relevance * (1 + TRACK_RECORD_WEIGHT * (2 * track_record(helped, harmed) - 1))


def role_of(*, status: str, success_rate: float | None) -> Role:
    """`warning` for a case in warning or with a failing record: shown to planners as what to avoid."""
    if status == "warning" or (success_rate is not None and success_rate < WARNING_BELOW):
        return "warning"
    return "example"


def vector_signal(similarities: Mapping[K, float]) -> float:
    """Weight in [0, 1] of a vector list in the fusion: how far its best hit stands out.

    margin = top-1 cosine - mean cosine of ranks 2..10, mapped linearly from SIGNAL_FLOOR (0) to
    SIGNAL_FULL (1). Measured with MiniLM on the labelled sets (docs/benchmarks.md): English
    questions have margins 0.14-0.53 (5th-95th percentile), Korean ones 0.05-0.30 (median 0.09):
    the model reads English, and of Korean only the Latin words (API, Redis, P1).
    """
    ordered = sorted(similarities.values(), reverse=True)
    if len(ordered) < 2:
        return 1.0 if ordered else 0.0
    margin = ordered[0] - sum(ordered[1:10]) / len(ordered[1:10])
    return min(max((margin - SIGNAL_FLOOR) / (SIGNAL_FULL - SIGNAL_FLOOR), 0.0), 1.0)


def reciprocal_rank_fusion(
    *rankings: Mapping[K, float], k: int = RRF_K, weights: tuple[float, ...] | None = None
) -> dict[K, float]:
    """Sum over the lists of weight / (k + rank); a list of weight 0 drops out."""
    fused: dict[K, float] = {}
    for index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[index]
        if weight <= 0:
            continue
        ordered = sorted(ranking.items(), key=lambda item: item[1], reverse=True)
        for rank, (key, _) in enumerate(ordered, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused
