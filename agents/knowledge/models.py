"""Knowledge documents, their embedded chunks and BM25 postings, searched by the retrieval worker."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from casebank.search.fields import EmbeddingField


class Document(models.Model):
    """A knowledge document, split into chunks that the retrieval worker searches."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=500, unique=True, help_text="Where it was loaded from.")
    content = models.TextField()
    checksum = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class DocumentChunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    text = models.TextField()
    embedding = EmbeddingField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, editable=False)
    # BM25 document length (tokens), as `Case.search_length`.
    search_length = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["document", "index"]
        constraints = [
            models.UniqueConstraint(fields=["document", "index"], name="documentchunk_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id} #{self.index}"


class DocumentTerm(models.Model):
    """Inverted index of chunks for BM25, the same design as `casebank.models.CaseTerm`."""

    chunk = models.ForeignKey(DocumentChunk, on_delete=models.CASCADE, related_name="terms")
    term = models.CharField(max_length=64)
    tf = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chunk", "term"], name="documentterm_unique_term"),
        ]
        indexes = [
            # BM25 scoring: WHERE term IN (...) GROUP BY chunk_id; covering on PostgreSQL.
            models.Index(fields=["term"], include=["chunk", "tf"], name="documentterm_term_idx"),
        ]
