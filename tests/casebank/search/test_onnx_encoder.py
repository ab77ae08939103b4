"""The ONNX backend (the default) gives sentence-transformers' vectors without torch in the
process, from any number of threads; the torch backend stays as the setting's other value and
as the fallback when a model does not export (issue #14)."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from casebank.search import embeddings, onnx_cache
from casebank.search.encoder import PlainEncoder, plain_layout
from casebank.search.onnx_cache import onnx_session
from casebank.search.onnx_encoder import TOKENS_PER_RUN, OnnxEncoder
from tests.support.tiny_models import WORDS, tiny_sentence_model

TEXTS = [
    "What was the total order revenue per region this year?",
    "Erstattung innerhalb von 30 Tagen",
    "Café naïve résumé, 東京の売上, 환불 정책 🙂",
    "word " * 400,  # past the model's 256 tokens: truncated the same way
    "",
    *[f"query {i} about refunds " * (i % 9) for i in range(40)],  # many lengths: several runs, padded
]


@pytest.fixture
def fresh_model(settings):
    """`embeddings` loads the model again for this test, and again for the next."""
    embeddings._load_model.cache_clear()
    yield settings
    embeddings._load_model.cache_clear()


def _onnx(model_dir: str, cache_dir) -> OnnxEncoder:
    layout = plain_layout(model_dir)
    assert layout is not None
    return OnnxEncoder(model_dir, layout, onnx_session(model_dir, cache_dir, threads=1))


def _assert_same_vectors(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-5
    cosines = (ours * theirs).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert np.abs(cosines - 1.0).max() < 1e-5


def test_it_gives_sentence_transformers_vectors_for_the_packaged_model(packaged, settings):
    ours = _onnx(packaged, settings.EMBEDDING_CACHE_DIR).encode(TEXTS, normalize_embeddings=True)
    theirs = SentenceTransformer(packaged, device="cpu").encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (len(TEXTS), 384)
    _assert_same_vectors(ours, theirs)


@pytest.mark.parametrize("pooling,normalize", [("mean", False), ("cls", False), ("mean", True)])
def test_it_gives_sentence_transformers_vectors_for_a_local_model(tmp_path, pooling, normalize):
    model = tiny_sentence_model(tmp_path, dimensions=16, pooling=pooling, normalize=normalize)
    texts = [" ".join(WORDS[: 1 + i % len(WORDS)]) + " unknown words too" for i in range(30)] + ["", " ".join(WORDS * 20)]
    ours = _onnx(model, tmp_path / "onnx").encode(texts)
    theirs = SentenceTransformer(model, device="cpu").encode(texts, convert_to_numpy=True)
    _assert_same_vectors(ours, theirs)


def test_a_long_batch_runs_in_bounded_pieces_with_the_same_vectors(packaged, settings):
    encoder = _onnx(packaged, settings.EMBEDDING_CACHE_DIR)
    texts = ["word " * 300] * 20 + ["short"]  # 20 x 256 tokens: past TOKENS_PER_RUN, so several runs
    assert 20 * 256 > TOKENS_PER_RUN
    together = encoder.encode(texts, normalize_embeddings=True)
    alone = np.stack([encoder.encode([text], normalize_embeddings=True)[0] for text in texts[-2:]])
    np.testing.assert_allclose(together[-2:], alone, atol=1e-6)


def test_threads_share_one_session_and_get_the_vectors_of_one_thread(packaged, fresh_model):
    fresh_model.EMBEDDING_MODEL = ""
    texts = [f"refund policy question number {i}" + " and more" * (i % 7) for i in range(64)]
    one_by_one = [embeddings.embed_text(text) for text in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(embeddings.embed_text, texts))
    assert isinstance(embeddings.get_model(), OnnxEncoder)
    assert embeddings._load_model.cache_info().misses == 1
    np.testing.assert_allclose(np.stack(concurrent), np.stack(one_by_one), atol=1e-6)


def test_embedding_on_onnx_imports_neither_torch_nor_transformers():
    code = ("import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup(); "
            "from casebank.search.embeddings import embed_text, get_model; embed_text('hello'); "
            "print(type(get_model()).__name__, 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "EMBEDDING_MODEL": "", "EMBEDDING_BACKEND": "onnx"})
    assert out.stdout.split()[-3:] == ["OnnxEncoder", "False", "False"], out.stderr[-2000:]


def test_the_torch_backend_stays_a_setting(fresh_model):
    fresh_model.EMBEDDING_MODEL = ""
    fresh_model.EMBEDDING_BACKEND = "torch"
    assert isinstance(embeddings.get_model(), PlainEncoder)


def test_a_model_that_does_not_export_embeds_on_torch(tmp_path, fresh_model, monkeypatch, caplog):
    model = tiny_sentence_model(tmp_path, dimensions=16)
    fresh_model.EMBEDDING_MODEL = model
    fresh_model.EMBEDDING_CACHE_DIR = tmp_path / "onnx"
    monkeypatch.setattr(onnx_cache, "EXPORT_TIMEOUT_S", 0.01)  # no export finishes in time
    vector = embeddings.embed_text("refund policy")
    assert isinstance(embeddings.get_model(), PlainEncoder)
    assert "Embedding on torch instead of ONNX Runtime" in caplog.text
    expected = SentenceTransformer(model, device="cpu").encode(["refund policy"], normalize_embeddings=True)[0]
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_a_model_in_sentence_transformers_6_layout_embeds_through_it(tmp_path, fresh_model):
    model = tiny_sentence_model(tmp_path, dimensions=16, classic=False)
    fresh_model.EMBEDDING_MODEL = model
    fresh_model.EMBEDDING_CACHE_DIR = tmp_path / "onnx"
    assert type(embeddings.get_model()) is SentenceTransformer  # not a layout the ONNX path reads
    assert not (tmp_path / "onnx").exists()
