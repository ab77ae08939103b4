"""Reads of the case bank: list, detail, history and retrieval (vector, BM25, hybrid)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from uuid import UUID

import numpy as np
from django.db import connection
from django.db.models import Avg, Count
from pgvector.django import CosineDistance

from casebank.models import HIDDEN_STATUSES, Case, CaseStatus, CaseTerm, CaseTermStat, ReviewState
from casebank.search.embeddings import embed_query
from casebank.search.ranking import Role, adjusted_score, role_of, score_fusion, vector_signal
from casebank.search.text import tokenize
from core.cache import layered_delete, layered_get_or_set

__all__ = ["score_fusion", "case_search", "vector_scores", "bm25_scores", "SearchHit"]


BM25_K1 = 1.2


BM25_B = 0.75


SEARCH_MODES = ("vector", "bm25", "hybrid")


_BM25_STATS_KEY = "casebank:bm25:stats"


# Postings a search reads, best first, shared among the query's terms (at least
# BM25_MIN_POSTINGS_PER_TERM each): bounds the work however common or many the terms are.
BM25_POSTINGS_BUDGET = 2_000


BM25_MIN_POSTINGS_PER_TERM = 100


@dataclass(frozen=True)
class SearchHit:
    case: Case
    score: float
    similarity: float | None = None
    bm25: float | None = None
    # What the mode measured, before the track record's bounded adjustment (`ranking`).
    relevance: float | None = None

    @property
    def role(self) -> Role:
        return role_of(status=self.case.status, success_rate=self.case.success_rate)

    @property
    def warning(self) -> bool:
        return self.role == "warning"


def visible_statuses(*, include_archived: bool = False) -> list[str]:
    """Statuses retrieval may return: deprecated and archived cases only when asked for."""
    if include_archived:
        return list(CaseStatus.values)
    return [s for s in CaseStatus.values if s not in HIDDEN_STATUSES]


def vector_scores(query_vector: np.ndarray, *, limit: int, statuses: list[str]) -> dict[UUID, float]:
    """Cosine similarity of the nearest approved cases: HNSW on PostgreSQL, exact NumPy on SQLite.

    Cases pending review (or rejected) are never retrieved: nobody has accepted their plan yet.
    """
    if connection.vendor == "postgresql":
        rows = (
            Case.objects.filter(status__in=statuses, review_state=ReviewState.APPROVED, embedding__isnull=False)
            .annotate(distance=CosineDistance("embedding", query_vector))
            .order_by("distance")
            .values_list("id", "distance")[:limit]
        )
        return {case_id: 1.0 - float(distance) for case_id, distance in rows}
    stored = [
        (case_id, embedding)
        for case_id, embedding in Case.objects.filter(
            status__in=statuses, review_state=ReviewState.APPROVED, embedding__isnull=False
        ).values_list("id", "embedding")
        if embedding is not None  # never false (filtered above); tells the type checker so
    ]
    if not stored:
        return {}
    matrix = np.vstack([embedding for _, embedding in stored])
    similarities = matrix @ np.asarray(query_vector, dtype=np.float32)
    top = np.argsort(-similarities)[:limit]
    return {stored[i][0]: float(similarities[i]) for i in top}


def bm25_stats(*, fresh: bool = False) -> tuple[int, float]:
    """Corpus size and mean document length; a minute of staleness does not change rankings."""
    def compute() -> tuple[int, float]:
        aggregate = Case.objects.aggregate(n=Count("*"), avgdl=Avg("search_length"))
        return (aggregate["n"] or 0, float(aggregate["avgdl"] or 0.0))

    if fresh:
        return compute()
    # Layered: answered from memory on most searches, and still answered when Redis is down.
    return layered_get_or_set(_BM25_STATS_KEY, compute, 60)


def bm25_stats_forget() -> None:
    layered_delete(_BM25_STATS_KEY)


def bm25_term_impact(tf: int, length: int, avgdl: float) -> float:
    """The query-independent part of a term's BM25 score in one document."""
    norm = 1 - BM25_B + BM25_B * length / (avgdl or length or 1)
    return tf * (BM25_K1 + 1) / (tf + BM25_K1 * norm)


def _document_frequencies(terms: list[str]) -> dict[str, int]:
    """How many cases hold each term: primary-key reads of `CaseTermStat`, exact and current."""
    return dict(CaseTermStat.objects.filter(term__in=terms, df__gt=0).values_list("term", "df"))


def bm25_scores(query: str, *, limit: int, statuses: list[str]) -> dict[UUID, float]:
    """Okapi BM25 over the `CaseTerm` inverted index, in one SQL statement (approved cases only).

    Each query term contributes its best postings (read in impact order from the index), a share
    of `BM25_POSTINGS_BUDGET`, so a search reads a bounded number of rows however common or many
    its terms are. Only terms with more postings than their share are cut, and those have the
    lowest idf, so the top of the ranking is the exact BM25 one in practice.
    """
    terms = sorted(set(tokenize(query)))
    if not terms:
        return {}
    total, _ = bm25_stats()
    frequencies = _document_frequencies(terms)
    # The cached corpus size may trail a moment behind; it can never be below a term's df.
    total = max(total, *frequencies.values(), 1)
    idf = {
        term: math.log(1 + (total - df + 0.5) / (df + 0.5)) for term, df in frequencies.items() if df
    }
    if not idf:
        return {}
    term_table, case_table = CaseTerm._meta.db_table, Case._meta.db_table
    postings = " UNION ALL ".join(
        f"SELECT * FROM (SELECT case_id, impact * %s AS score FROM {term_table} "
        "WHERE term = %s ORDER BY impact DESC LIMIT %s) AS t"
        for _ in idf
    )
    status_marks = ", ".join(["%s"] * len(statuses))
    # Scores first, status second: a case's status filters all its postings or none, so
    # filtering the ranked sums is the same as filtering the postings, and the join reads
    # the case rows best-first until `limit` visible ones are found (about `limit` primary-key
    # probes, instead of one random heap read per posting).
    sql = (
        f"SELECT r.case_id, r.total FROM (SELECT p.case_id, SUM(p.score) AS total FROM ({postings}) AS p "
        "GROUP BY p.case_id ORDER BY total DESC, p.case_id) AS r "
        f"JOIN {case_table} AS c ON c.id = r.case_id WHERE c.status IN ({status_marks}) AND c.review_state = %s "
        "ORDER BY r.total DESC, r.case_id LIMIT %s"
    )
    per_term = max(BM25_MIN_POSTINGS_PER_TERM, BM25_POSTINGS_BUDGET // len(idf))
    params: list = []
    for term, weight in idf.items():
        params += [weight, term, per_term]
    params += [*statuses, ReviewState.APPROVED.value, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {(value if isinstance(value, UUID) else UUID(value)): float(score) for value, score in rows}


def case_search(
    *, query: str, k: int = 10, mode: str = "hybrid", include_archived: bool = False
) -> list[SearchHit]:
    """Top-k cases for a task, best first, with scores and each case's track record."""
    statuses = visible_statuses(include_archived=include_archived)
    depth = max(k * 4, 50)
    similarity: dict[UUID, float] = {}
    lexical: dict[UUID, float] = {}
    if mode in ("vector", "hybrid"):
        similarity = vector_scores(embed_query(query), limit=depth, statuses=statuses)
    if mode in ("bm25", "hybrid"):
        lexical = bm25_scores(query, limit=depth, statuses=statuses)

    if mode == "vector":
        scores = {case_id: max(value, 0.0) for case_id, value in similarity.items()}
    elif mode == "bm25":
        scores = lexical
    else:
        # The vector list counts by how much signal it has (`ranking.vector_signal`): a model
        # that cannot read the query's language must not drag a good BM25 ranking down.
        scores = score_fusion(similarity, lexical, vector_weight=vector_signal(similarity))

    # Rank on a few columns alone, then load only the k winners: the candidates are up to
    # 2 x depth, and whole rows (query, plan) for all of them cost more than the ranking.
    records = {
        case_id: (status, helped, harmed)
        for case_id, status, helped, harmed in Case.objects.filter(pk__in=list(scores)).values_list(
            "id", "status", "reuse_helped", "reuse_harmed"
        )
    }
    # Relevance first, the track record as a bounded adjustment (see `ranking`); among equal
    # scores a case in warning comes after a healthy one, then the closer meaning (each list's
    # best ties at 1/2 when the lists disagree), then ids keep the order stable.
    ranked = sorted(
        (
            (adjusted_score(score, helped=records[case_id][1], harmed=records[case_id][2]),
             records[case_id][0] != CaseStatus.WARNING, str(case_id), score, case_id)
            for case_id, score in scores.items() if case_id in records
        ),
        key=lambda row: (-row[0], not row[1], -similarity.get(row[4], -1.0), row[2]),
    )[:k]
    cases = Case.objects.defer("embedding").in_bulk([row[4] for row in ranked])
    return [
        SearchHit(case=cases[case_id], score=adjusted, similarity=similarity.get(case_id),
                  bm25=lexical.get(case_id), relevance=relevance)
        for adjusted, _, _, relevance, case_id in ranked
        if case_id in cases  # deleted between the two reads
    ]
