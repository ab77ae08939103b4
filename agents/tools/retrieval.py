"""Hybrid retrieval over knowledge-document chunks and cases for the retrieval worker.

BM25 over `DocumentTerm` is the case bank's approach (an inverted-index table scored in one SQL
aggregate); cases are scored by `casebank.search.selectors` itself, and both lists are fused with
`casebank.search.ranking.score_fusion`. Candidates are then reranked on their fused score, cosine
similarity and query-term coverage, which rewards passages that actually contain what was asked.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, FloatField, Sum, Value, When
from django.db.models import Case as SqlCase
from django.db.models.functions import Cast
from pgvector.django import CosineDistance

from agents.models import DocumentChunk, DocumentTerm
from casebank.models import Case
from casebank.search import embeddings
from casebank.search import selectors as case_selectors
from casebank.search.embeddings import embed_query
from casebank.search.ranking import score_fusion, vector_signal
from casebank.search.text import tokenize

MODES = ("hybrid", "vector", "bm25")
CANDIDATES = 10
CONTEXT_SIZE = 5


@dataclass
class Passage:
    key: tuple[str, str]  # ("doc", chunk id) or ("case", case id)
    title: str
    text: str
    similarity: float | None = None
    bm25: float | None = None
    fused: float = 0.0
    score: float = 0.0  # the order
    # How well the passage itself answers the query on a fixed scale, unlike `score`, which the
    # fused half makes relative to the best candidate: what the worker's confidence averages.
    match: float = 0.0

    @property
    def source(self) -> dict:
        kind, ident = self.key
        return {"type": "document" if kind == "doc" else "case", "id": ident, "title": self.title,
                "score": round(self.score, 4),
                "similarity": None if self.similarity is None else round(self.similarity, 4)}


def chunk_vector_scores(query_vector: np.ndarray, *, limit: int) -> dict[int, float]:
    if connection.vendor == "postgresql":
        rows = (
            DocumentChunk.objects.filter(embedding__isnull=False)
            .annotate(distance=CosineDistance("embedding", query_vector))
            .order_by("distance")
            .values_list("id", "distance")[:limit]
        )
        return {chunk_id: 1.0 - float(distance) for chunk_id, distance in rows}
    stored = [
        (chunk_id, embedding)
        for chunk_id, embedding in DocumentChunk.objects.filter(embedding__isnull=False).values_list("id", "embedding")
        if embedding is not None  # never false (filtered above); tells the type checker so
    ]
    if not stored:
        return {}
    similarities = np.vstack([e for _, e in stored]) @ np.asarray(query_vector, dtype=np.float32)
    return {stored[i][0]: float(similarities[i]) for i in np.argsort(-similarities)[:limit]}


def chunk_bm25_scores(query: str, *, limit: int) -> dict[int, float]:
    terms = sorted(set(tokenize(query)))
    if not terms:
        return {}
    stats = DocumentChunk.objects.aggregate(n=Count("id"), avgdl=Avg("search_length"))
    total, avgdl = stats["n"] or 0, float(stats["avgdl"] or 0.0)
    if not total or not avgdl:
        return {}
    frequencies = dict(DocumentTerm.objects.filter(term__in=terms).values_list("term").annotate(df=Count("id")))
    idf = {t: math.log(1 + (total - df + 0.5) / (df + 0.5)) for t, df in frequencies.items()}
    if not idf:
        return {}
    k1, b = case_selectors.BM25_K1, case_selectors.BM25_B
    weight = SqlCase(*[When(term=t, then=Value(w)) for t, w in idf.items()], default=Value(0.0), output_field=FloatField())
    tf = Cast("tf", FloatField())
    length = Cast("chunk__search_length", FloatField())
    score = weight * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))
    rows = (
        DocumentTerm.objects.filter(term__in=list(idf)).values("chunk_id")
        .annotate(score=Sum(score, output_field=FloatField())).order_by("-score")
        .values_list("chunk_id", "score")[:limit]
    )
    return {chunk_id: float(value) for chunk_id, value in rows}


def search_passages(
    query: str, *, mode: str = "hybrid", vector_threshold: float | None = None,
    candidates: int = CANDIDATES, rerank: bool = True,
) -> list[Passage]:
    """Top `candidates` passages (document chunks and cases), best first."""
    threshold = embeddings.vector_threshold() if vector_threshold is None else vector_threshold
    depth = max(candidates * 4, 40)
    vector = embed_query(query)
    signal = 1.0
    similarity: dict[tuple[str, str], float] = {}
    lexical: dict[tuple[str, str], float] = {}
    raw_similarity: dict[tuple[str, str], float] = {}
    if mode in ("hybrid", "vector"):
        for chunk_id, value in chunk_vector_scores(vector, limit=depth).items():
            similarity[("doc", str(chunk_id))] = value
        for case_id, value in case_selectors.vector_scores(vector, limit=depth, statuses=case_selectors.visible_statuses()).items():
            similarity[("case", str(case_id))] = value
        raw_similarity = dict(similarity)
        # Below the threshold a vector match is noise; BM25 can still bring the passage in.
        similarity = {key: value for key, value in similarity.items() if value >= threshold}
    if mode in ("hybrid", "bm25"):
        for chunk_id, value in chunk_bm25_scores(query, limit=depth).items():
            lexical[("doc", str(chunk_id))] = value
        for case_id, value in case_selectors.bm25_scores(query, limit=depth, statuses=case_selectors.visible_statuses()).items():
            lexical[("case", str(case_id))] = value
    if mode == "hybrid":
        # Weighted by the vector list's signal, before the threshold cut (`ranking.vector_signal`).
        signal = vector_signal(raw_similarity)
        fused = score_fusion(similarity, lexical, vector_weight=signal)
    else:
        fused = dict(similarity if mode == "vector" else lexical)
    # Equal fused scores (each list's best at 1/2 when they disagree) go to the closer meaning.
    top = sorted(fused.items(), key=lambda item: (item[1], raw_similarity.get(item[0], -1.0), item[0]),
                 reverse=True)[:candidates]
    passages = _materialise([key for key, _ in top])
    for passage in passages:
        passage.fused = fused[passage.key]
        passage.similarity = raw_similarity.get(passage.key)
        passage.bm25 = lexical.get(passage.key)
    if rerank and settings.RERANKER_MODEL:
        _cross_rerank(query, passages)
    elif rerank:
        _rerank(query, vector, passages, vector_weight=signal if mode == "hybrid" else 1.0)
    else:
        for passage in passages:
            passage.score = passage.match = passage.fused
    passages.sort(key=lambda p: p.score, reverse=True)
    return passages


def _materialise(keys: list[tuple[str, str]]) -> list[Passage]:
    chunk_ids = [int(ident) for kind, ident in keys if kind == "doc"]
    case_ids = [ident for kind, ident in keys if kind == "case"]
    chunks = DocumentChunk.objects.select_related("document").defer("embedding", "document__content").in_bulk(chunk_ids)
    cases = {str(pk): case for pk, case in Case.objects.defer("embedding").in_bulk(case_ids).items()}
    passages = []
    for kind, ident in keys:
        if kind == "doc" and int(ident) in chunks:
            chunk = chunks[int(ident)]
            passages.append(Passage(key=(kind, ident), title=chunk.document.title, text=chunk.text))
        elif kind == "case" and ident in cases:
            case = cases[ident]
            passages.append(Passage(key=(kind, ident), title=case.title, text=f"{case.query}\nPlan: {case.plan}"))
    return passages


def _rerank(query: str, vector: np.ndarray, passages: list[Passage], *, vector_weight: float = 1.0) -> None:
    """Score = 1/2 x fused / best fused + 1/2 x (0.7 w x cosine + 0.3 x coverage) / (0.7 w + 0.3),

    coverage the share of query terms the passage contains, w the vector list's signal
    (`ranking.vector_signal`): cosines of a model that cannot read the query's language would
    otherwise decide the order. Half of the score stays the fused one, so the rerank reorders
    close candidates and cannot undo a clear BM25 winner (without it Korean MRR fell from the
    fusion's 0.958 to 0.892). Ties keep the fused order.
    """
    from casebank.search.embeddings import embed_texts

    missing = [p for p in passages if p.similarity is None]
    if missing and vector_weight > 0:  # BM25-only candidates beyond the vector search depth: compute their cosine
        for passage, v in zip(missing, embed_texts([f"{p.title}\n{p.text}" for p in missing]), strict=False):
            passage.similarity = float(np.dot(v, vector))
    terms = set(tokenize(query))
    cosine_weight = 0.7 * vector_weight
    best_fused = max((passage.fused for passage in passages), default=0.0)
    for passage in passages:
        coverage = len(terms & set(tokenize(f"{passage.title} {passage.text}"))) / len(terms) if terms else 0.0
        passage.match = (cosine_weight * max(passage.similarity or 0.0, 0.0) + 0.3 * coverage) / (cosine_weight + 0.3)
        passage.score = 0.5 * (passage.fused / best_fused if best_fused > 0 else 0.0) + 0.5 * passage.match


_reranker_lock = threading.Lock()


@lru_cache(maxsize=1)
def cross_encoder(name_or_path: str) -> Any:
    """The `RERANKER_MODEL` cross-encoder, loaded once per process (offline: no model hub)."""
    from casebank.search.embeddings import offline_environment

    offline_environment()
    from sentence_transformers import CrossEncoder

    return CrossEncoder(name_or_path, device="cpu")


def _cross_rerank(query: str, passages: list[Passage]) -> None:
    """Score = the cross-encoder's relevance of (query, passage), a sigmoid in [0, 1].

    Reads query and passage together, as the seed's BGE-reranker does; the worker calls it from
    its own thread (agents run in the session runner's worker threads), never on an event loop.
    """
    if not passages:
        return
    with _reranker_lock:
        model = cross_encoder(settings.RERANKER_MODEL)
    scores = model.predict([(query, f"{p.title}\n{p.text}") for p in passages], show_progress_bar=False)
    for passage, score in zip(passages, scores, strict=True):
        passage.score = passage.match = float(score)
