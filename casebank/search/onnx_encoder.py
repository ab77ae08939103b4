"""The plain layout's encoder on ONNX Runtime and the `tokenizers` library: no torch, no transformers.

A process that only embeds (web worker, session runner) then holds ~60 MB of runtime and a
~90 MB graph instead of torch (~265 MB) and transformers (~200 MB with the model): the session
runner's budget is 600 MB (issue #14). The graph is exported once from the same weights
(`onnx_cache`); the vectors stay within 1e-5 of sentence-transformers'
(tests/casebank/search/test_onnx_encoder.py).

One `InferenceSession` serves every thread: ONNX Runtime allows concurrent `run` calls on one
session, and the tokenizer is configured once here and only read afterwards (changing its
padding or truncation per call, as transformers does, is what breaks under threads).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from casebank.search.encoder import Layout

TOKENIZER_FILE = "tokenizer.json"


# Tokens (rows x the longest row) in one run of the graph. ONNX Runtime's memory arena keeps its
# high-water mark for the life of the process, and attention's memory grows with rows x tokens²:
# one 64 x 256-token batch left the arena 600 MB larger, the same texts in runs of 2,048 tokens
# 55 MB (scripts/embedding_memory.py; docs/benchmarks.md). A query is one run of a few tokens.
TOKENS_PER_RUN = 2048


def session_options(threads: int) -> Any:  # an onnxruntime.SessionOptions
    """Bounded threads; the memory arena stays on (one pool for every thread: 8 threads embedding
    at once added 23 MB with it, 51 MB without, through glibc's per-thread heaps), bounded by
    `TOKENS_PER_RUN`; no memory patterns (planned per input shape, and every query has its own)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: one per core
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only
    return options


def load_session(path: str | Path, threads: int) -> Any:  # an onnxruntime.InferenceSession
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"])


def load_tokenizer(model_dir: str, max_length: int) -> Any:  # a tokenizers.Tokenizer
    """The model's fast tokenizer with sentence-transformers' truncation and no padding (the file's
    own settings may pad every text to a fixed length; `OnnxEncoder` pads each run itself)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_dir) / TOKENIZER_FILE))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def pad_id(model_dir: str, tokenizer: Any) -> int:
    root = Path(model_dir)
    config = {**_json(root / "special_tokens_map.json"), **_json(root / "tokenizer_config.json")}
    token = config.get("pad_token") or "[PAD]"
    if isinstance(token, dict):  # an AddedToken saved as a dict
        token = token.get("content", "[PAD]")
    found = tokenizer.token_to_id(token)
    return 0 if found is None else int(found)


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def pool(hidden: np.ndarray, mask: np.ndarray, layout: Layout, normalize: bool) -> np.ndarray:
    """sentence-transformers' pooling: CLS or the mean over real tokens, then L2 normalisation."""
    if layout.pooling == "cls":
        vectors = hidden[:, 0]
    else:
        weights = mask[..., None].astype(hidden.dtype)
        vectors = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if layout.normalize or normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors.astype(np.float32, copy=False)


# Graph input -> the tokenizers.Encoding attribute that fills it.
_COLUMNS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def runs(lengths: list[int], *, max_rows: int) -> list[list[int]]:
    """Indexes of texts grouped into runs of similar length, each within `TOKENS_PER_RUN` (a text
    longer than that runs alone): sorted, so that little padding is computed."""
    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        current = groups[-1] if groups else None
        # Sorted ascending: this text is the longest of its run so far.
        if current is None or len(current) >= max_rows or (len(current) + 1) * lengths[index] > TOKENS_PER_RUN:
            groups.append([index])
        else:
            current.append(index)
    return groups


class OnnxEncoder:
    """What `embeddings` uses of a SentenceTransformer: `encode` and `get_embedding_dimension`."""

    def __init__(self, model_dir: str, layout: Layout, session: Any) -> None:
        self.layout = layout
        self.session = session
        self.tokenizer = load_tokenizer(model_dir, layout.max_length)
        self.pad_id = pad_id(model_dir, self.tokenizer)
        self.input_names = [node.name for node in session.get_inputs()]
        self.dimension = int(session.get_outputs()[0].shape[-1])

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: list[str], *, batch_size: int = 64, normalize_embeddings: bool = False,
               **_ignored: Any) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts) if texts else []
        for run in runs([len(e.ids) for e in encodings], max_rows=batch_size):
            width = max(len(encodings[i].ids) for i in run)
            columns = {name: np.zeros((len(run), width), dtype=np.int64) for name in _COLUMNS}
            columns["input_ids"].fill(self.pad_id)
            for row, i in enumerate(run):
                encoding = encodings[i]
                for name, attribute in _COLUMNS.items():
                    values = getattr(encoding, attribute)
                    columns[name][row, :len(values)] = values
            (hidden,) = self.session.run(None, {name: columns[name] for name in self.input_names})
            out[run] = pool(hidden, columns["attention_mask"], self.layout, normalize_embeddings)
        return out
