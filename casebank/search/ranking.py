"""Ordering retrieved cases: relevance first, the track record as a bounded adjustment.

Relevance is what the mode measures (cosine similarity, BM25, or the fused score of both). A
case's track record is its reuse value: `helped` and `harmed`, the runs of its plan that
succeeded and failed, each weighted by its age (half-life REFLECTION_HALF_LIFE_DAYS; stored on
the case by every analysis, `Case.reuse_helped` / `reuse_harmed`). It moves the score by at
most `TRACK_RECORD_WEIGHT` of the relevance:

    p = (helped + PRIOR_RUNS / 2) / (helped + harmed + PRIOR_RUNS)    Beta(5, 5) posterior mean
    score = relevance * (1 + TRACK_RECORD_WEIGHT * (2p - 1))

The posterior shrinks a short or old record towards 1/2 (old runs weigh little), so a case
with few recent runs barely moves, and a case never run does not move at all. With the weight at
0.006 the largest swing between two cases is 1.2% of relevance: the track record reorders
near-ties (two cases within 1.2% of each other) and never a clear winner. A case in `warning` keeps the place its relevance gives it, and is
marked as a warning so that a planner reads it as one (issue #18: a 0.5 multiplier buried a
0.84-cosine match under a 0.28 one).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Literal, TypeVar

K = TypeVar("K", bound=Hashable)

# The vector list's share of a hybrid score when it reads the query well (see `score_fusion`).
VECTOR_SHARE = 0.5
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


def _min_max(scores: Mapping[K, float]) -> dict[K, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    return {key: (value - low) / (high - low) if high > low else 1.0 for key, value in scores.items()}


def score_fusion(similarity: Mapping[K, float], lexical: Mapping[K, float], *, vector_weight: float = 1.0) -> dict[K, float]:
    """The hybrid score: a convex combination of the two lists' normalised scores,

        score = a * (cos - min cos) / (max cos - min cos) + (1 - a) * bm25 / max bm25,
        a = VECTOR_SHARE * vector_weight

    (Bruch, Gai and Ingber, "An analysis of fusion functions for hybrid retrieval", ACM TOIS
    2023), min and max over the list; an item missing from a list scores 0 there. Unlike
    Reciprocal Rank Fusion it keeps how far a winner is ahead: under RRF (k=60) the gap between
    BM25's first and second hit is 1/61 - 1/62, which any disorder in a list the model cannot
    read overturns (Korean hybrid MRR 0.865 against BM25's 0.958; with this fusion 0.958, and
    English 0.979 against RRF's 0.946, docs/benchmarks.md). `vector_weight` is the vector list's
    `vector_signal`; at 0 the score is BM25's alone.
    """
    share = VECTOR_SHARE * min(max(vector_weight, 0.0), 1.0)
    dense = _min_max(similarity) if share > 0 else {}
    top_lexical = max(lexical.values(), default=0.0)
    sparse = {key: value / top_lexical for key, value in lexical.items()} if top_lexical > 0 else {}
    return {key: share * dense.get(key, 0.0) + (1 - share) * sparse.get(key, 0.0) for key in {*dense, *sparse}}
