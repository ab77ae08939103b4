"""A configured cross-encoder reranks the retrieval agent's candidates (issue #18)."""
from __future__ import annotations

from pathlib import Path

import pytest

from agents.tools import retrieval
from agents.tools.retrieval import search_passages

pytestmark = pytest.mark.django_db

WORDS = "refund policy annual subscription backups retained days escalate incident outage customers data".split()


def _tiny_cross_encoder(path: Path) -> str:
    """A one-layer BERT cross-encoder with a hand-written vocabulary: no model hub needed."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    torch.manual_seed(7)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_it_reranks_with_the_configured_cross_encoder_loaded_once(knowledge, settings, tmp_path):
    from sentence_transformers import CrossEncoder

    settings.RERANKER_MODEL = _tiny_cross_encoder(tmp_path)
    retrieval.cross_encoder.cache_clear()
    query = "how many days are backups retained"
    passages = search_passages(query, mode="hybrid")
    expected = CrossEncoder(settings.RERANKER_MODEL, device="cpu").predict(
        [(query, f"{p.title}\n{p.text}") for p in passages]
    )
    by_key = {p.key: float(score) for p, score in zip(passages, expected, strict=True)}
    # The cross-encoder's sigmoid score is each passage's score, and the order follows it.
    assert [p.score for p in passages] == pytest.approx([by_key[p.key] for p in passages], abs=1e-5)
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    assert all(0.0 <= p.score <= 1.0 for p in passages)
    search_passages("refund for an annual subscription", mode="hybrid")
    assert retrieval.cross_encoder.cache_info().misses == 1


def test_it_keeps_the_heuristic_rerank_without_a_model(knowledge, settings):
    settings.RERANKER_MODEL = ""
    retrieval.cross_encoder.cache_clear()
    passages = search_passages("how many days are backups retained", mode="hybrid")
    assert passages[0].title == "Data retention schedule"
    assert retrieval.cross_encoder.cache_info().misses == 0
