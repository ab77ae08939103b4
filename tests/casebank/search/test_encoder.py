"""The plain encoder (the torch backend, `EMBEDDING_BACKEND=torch`) gives the vectors
sentence-transformers gives for the same model (stored case and document vectors stay
comparable), and takes only the layouts it can reproduce. The ONNX backend: test_onnx_encoder.py."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
from sentence_transformers import SentenceTransformer

from casebank.search import embeddings
from casebank.search.encoder import PlainEncoder, plain_layout

TEXTS = [
    "What was the total order revenue per region this year?",
    "Erstattung innerhalb von 30 Tagen",
    "word " * 400,  # past the model's 256 tokens: truncated the same way
    "",
]


def test_it_gives_sentence_transformers_vectors(packaged):
    layout = plain_layout(packaged)
    assert layout is not None and layout.pooling == "mean" and layout.max_length == 256
    ours = PlainEncoder(packaged, layout).encode(TEXTS, batch_size=2, normalize_embeddings=True)
    theirs = SentenceTransformer(packaged, device="cpu").encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (4, 384)
    assert np.abs(ours - theirs).max() < 1e-5


def test_it_is_what_the_packaged_model_loads_as_on_the_torch_backend(settings):
    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_BACKEND = "torch"
    embeddings._load_model.cache_clear()
    try:
        assert isinstance(embeddings.get_model(), PlainEncoder)
        vector = embeddings.embed_text("refund policy")
        assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    finally:
        embeddings._load_model.cache_clear()


def test_it_leaves_other_layouts_to_sentence_transformers(packaged, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(packaged, copy)
    assert plain_layout(str(copy)) is not None
    pooling = copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True}))
    assert plain_layout(str(copy)) is None  # max pooling: not reproduced
    pooling.write_text(json.dumps(config))
    (copy / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "query: "}}))
    assert plain_layout(str(copy)) is None  # prompts change the text
    assert plain_layout("sentence-transformers/all-MiniLM-L6-v2") is None  # a hub name, not a directory


def test_embedding_does_not_import_sentence_transformers():
    code = ("import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup(); "
            "from casebank.search.embeddings import embed_text; embed_text('hello'); "
            "print('sentence_transformers' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "EMBEDDING_MODEL": "", "EMBEDDING_BACKEND": "torch"})
    assert out.stdout.split()[-2:] == ["False", "False"], out.stderr[-2000:]
