"""Changing the embedding model's dimension: re-embed, resize the vector columns, reindex (#18)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from agents.models import DocumentChunk
from casebank.models import Case
from casebank.search import embeddings
from casebank.search.onnx_encoder import OnnxEncoder
from casebank.search.selectors import case_search
from tests.support.tiny_models import tiny_sentence_model

pytestmark = pytest.mark.django_db

DIMENSIONS = 32


@pytest.fixture
def switch_to_tiny_model(settings, tmp_path):
    """Configure the 32-d model, as an operator changes EMBEDDING_MODEL/EMBEDDING_DIMENSIONS."""
    path = tiny_sentence_model(tmp_path, dimensions=DIMENSIONS)

    def switch() -> None:
        embeddings._load_model.cache_clear()
        settings.EMBEDDING_MODEL = path
        settings.EMBEDDING_CACHE_DIR = tmp_path / "onnx"  # its ONNX graph stays out of var/
        settings.EMBEDDING_DIMENSIONS = DIMENSIONS

    yield switch
    embeddings._load_model.cache_clear()  # the next test embeds with the packaged model again


def _column_type(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
            [table],
        )
        return cursor.fetchone()[0]


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%%embedding_hnsw'")
        return {row[0] for row in cursor.fetchall()}


def test_it_reembeds_cases_and_chunks_at_the_new_dimension(make_case, knowledge, switch_to_tiny_model):
    revenue = make_case(title="Monthly revenue by region", query="monthly revenue by region")
    make_case(title="Refund policy", query="refund policy annual")
    switch_to_tiny_model()
    out = io.StringIO()
    call_command("rebuild_embeddings", "--no-progress", stdout=out)
    assert "32 dimensions" in out.getvalue()
    assert isinstance(embeddings.get_model(), OnnxEncoder)  # the default backend, from its own exported graph

    assert {len(v) for v in Case.objects.values_list("embedding", flat=True)} == {DIMENSIONS}
    assert {len(v) for v in DocumentChunk.objects.values_list("embedding", flat=True)} == {DIMENSIONS}
    stored = Case.objects.get(pk=revenue.pk).embedding
    assert np.allclose(stored, embeddings.embed_text("Monthly revenue by region\nmonthly revenue by region"), atol=1e-5)
    if connection.vendor == "postgresql":
        assert _column_type("casebank_case") == "vector(32)"
        assert _column_type("agents_documentchunk") == "vector(32)"
        assert _indexes() == {"casebank_case_embedding_hnsw", "agents_documentchunk_embedding_hnsw"}
    # Vector search runs on the new vectors (HNSW on PostgreSQL): the same text is its own best match.
    assert case_search(query="Monthly revenue by region\nmonthly revenue by region", mode="vector", k=1)[0].case.id == revenue.id
    # New cases are embedded at the new size too.
    assert len(make_case(title="Churn", query="churn customers").embedding) == DIMENSIONS


def test_it_refuses_a_dimension_the_model_does_not_produce(make_case, switch_to_tiny_model, settings):
    before = make_case().embedding
    switch_to_tiny_model()
    settings.EMBEDDING_DIMENSIONS = 768
    with pytest.raises(CommandError, match="produces 32 dimensions"):
        call_command("rebuild_embeddings", "--no-progress", stdout=io.StringIO())
    assert np.allclose(Case.objects.get().embedding, before)  # nothing was touched
