"""The sentence encoder of the common model layout (a transformer, then mean or CLS pooling,
then optionally L2 normalisation), on `transformers` alone.

Importing sentence-transformers pulls in scikit-learn and SciPy, ~80 MB of memory in every
process that embeds (a session runner's budget is 600 MB), and its `encode` adds work per
call that a one-query embedding pays in full. For the layouts it can reproduce exactly, this
encoder gives the same vectors (checked in tests/casebank/search/test_encoder.py); any other
layout loads with sentence-transformers (`embeddings._load_model`). This is the torch backend
(`EMBEDDING_BACKEND=torch`, and the fallback of a model that does not export); the default runs
the same layout on ONNX Runtime (`onnx_encoder`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


@dataclass(frozen=True)
class Layout:
    pooling: str  # "mean" or "cls"
    normalize: bool
    max_length: int


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def plain_layout(model_dir: str) -> Layout | None:
    """The layout of the sentence-transformers model saved at `model_dir` when this encoder
    reproduces it, else None (a hub name, other modules, other pooling, prompts, lower-casing)."""
    root = Path(model_dir)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    types = [module.get("type") for module in modules]
    if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]) or modules[0].get("path"):
        return None
    modes = [name for name, on in _json(root / modules[1].get("path", "") / "config.json").items()
             if name.startswith("pooling_mode_") and on]
    config = _json(root / "config_sentence_transformers.json")
    bert = _json(root / "sentence_bert_config.json")
    if (len(modes) != 1 or modes[0] not in _POOLING_MODES or config.get("prompts") or config.get("default_prompt_name")
            or bert.get("do_lower_case") or not isinstance(bert.get("max_seq_length"), int)):
        return None
    return Layout(pooling=_POOLING_MODES[modes[0]], normalize=len(types) == 3, max_length=bert["max_seq_length"])


class PlainEncoder:
    """What `embeddings` uses of a SentenceTransformer: `encode` and `get_embedding_dimension`."""

    def __init__(self, model_dir: str, layout: Layout) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.layout = layout
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval()

    def get_embedding_dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str], *, batch_size: int = 64, normalize_embeddings: bool = False,
               **_ignored: Any) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                   max_length=self.layout.max_length, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
                if self.layout.pooling == "cls":
                    vectors = hidden[:, 0]
                else:  # the mean over the real tokens, padding left out
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    vectors = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                if self.layout.normalize or normalize_embeddings:
                    vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            out.append(vectors.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.get_embedding_dimension()), dtype=np.float32)
