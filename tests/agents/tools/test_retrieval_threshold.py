"""The vector threshold is calibrated for the embedding model, not a constant from another one."""
from __future__ import annotations

import pytest
from django.core.checks import run_checks

from agents.tools.retrieval import search_passages
from casebank.search import embeddings

pytestmark = pytest.mark.django_db

NONSENSE = ["zxqv blorf wumpus", "purple elephants dancing on the moon", "recipe for chocolate cake"]


def test_it_uses_the_threshold_calibrated_for_the_packaged_model(settings):
    settings.RETRIEVAL_VECTOR_THRESHOLD = None
    assert embeddings.vector_threshold() == embeddings.CALIBRATED_VECTOR_THRESHOLDS["all-MiniLM-L6-v2"] == 0.30
    settings.RETRIEVAL_VECTOR_THRESHOLD = 0.45
    assert embeddings.vector_threshold() == 0.45


def test_it_warns_when_the_model_has_no_calibrated_threshold(settings):
    settings.RETRIEVAL_VECTOR_THRESHOLD = None
    settings.EMBEDDING_MODEL = "/models/some-local-model"
    assert embeddings.vector_threshold() == 0.0
    assert "caseloop.W001" in {message.id for message in run_checks()}
    settings.EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
    assert embeddings.vector_threshold() == 0.30
    assert "caseloop.W001" not in {message.id for message in run_checks()}


@pytest.mark.parametrize("query", NONSENSE)
def test_it_finds_nothing_for_a_nonsense_query(knowledge, make_case, settings, query):
    settings.RETRIEVAL_VECTOR_THRESHOLD = None
    make_case(title="Churn drivers", query="Why did customers churn last month?")
    assert search_passages(query, mode="vector") == []
    assert search_passages(query, mode="hybrid") == []
    # Without the threshold the same query gets the nearest noise.
    assert search_passages(query, mode="vector", vector_threshold=0.0)


def test_it_keeps_a_paraphrase_above_the_calibrated_threshold(knowledge, settings):
    settings.RETRIEVAL_VECTOR_THRESHOLD = None
    passages = search_passages("Can a customer get money back on a yearly plan?", mode="vector")
    assert passages and passages[0].title == "Refund policy"
