"""Re-embedding cases and document chunks with the configured model, at its dimension."""
from __future__ import annotations

from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import transaction

from agents.models import DocumentChunk
from casebank.models import Case
from casebank.search.embeddings import embed_texts, get_model
from casebank.search.services import search_text, vector_column_resize, vector_index_create
from core.errors import InvalidInput

BATCH = 256
CASE_INDEX = "casebank_case_embedding_hnsw"
CHUNK_INDEX = "agents_documentchunk_embedding_hnsw"


def _batches(ids: list) -> Iterator[list]:
    for start in range(0, len(ids), BATCH):
        yield ids[start:start + BATCH]


def embeddings_rebuild(*, on_progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Resize the vector columns to `EMBEDDING_DIMENSIONS`, re-embed every case and chunk, reindex.

    Embedding runs outside transactions, batch by batch; each batch's writes are one short
    transaction. The HNSW indexes are built once at the end (faster than maintaining them row by
    row). Returns (cases, chunks).
    """
    dimensions = int(settings.EMBEDDING_DIMENSIONS)
    produced = get_model().get_embedding_dimension()
    if produced != dimensions:
        raise InvalidInput(
            f"The embedding model produces {produced} dimensions, EMBEDDING_DIMENSIONS is {dimensions}.",
            errors={"EMBEDDING_DIMENSIONS": [f"Set it to {produced}."]},
        )
    with transaction.atomic():
        vector_column_resize(table=Case._meta.db_table, index=CASE_INDEX, dimensions=dimensions)
        vector_column_resize(table=DocumentChunk._meta.db_table, index=CHUNK_INDEX, dimensions=dimensions)

    case_ids = list(Case.objects.order_by("pk").values_list("pk", flat=True))
    for case_batch in _batches(case_ids):
        rows = list(Case.objects.filter(pk__in=case_batch).values_list("pk", "title", "query"))
        vectors = embed_texts([search_text(title, query) for _, title, query in rows])
        with transaction.atomic():
            for (pk, _, _), vector in zip(rows, vectors, strict=True):
                Case.objects.filter(pk=pk).update(embedding=vector)
        if on_progress:
            on_progress(len(rows))

    chunk_ids = list(DocumentChunk.objects.order_by("pk").values_list("pk", flat=True))
    for chunk_batch in _batches(chunk_ids):
        chunks = list(DocumentChunk.objects.filter(pk__in=chunk_batch).values_list("pk", "document__title", "text"))
        # As `document_upsert` embeds them: the title goes into every chunk.
        vectors = embed_texts([f"{title}\n{text}" for _, title, text in chunks])
        with transaction.atomic():
            for (chunk_pk, _, _), vector in zip(chunks, vectors, strict=True):
                DocumentChunk.objects.filter(pk=chunk_pk).update(embedding=vector)
        if on_progress:
            on_progress(len(chunks))

    vector_index_create(table=Case._meta.db_table, index=CASE_INDEX)
    vector_index_create(table=DocumentChunk._meta.db_table, index=CHUNK_INDEX)
    return len(case_ids), len(chunk_ids)
