"""Export a model's transformer to ONNX and check it against torch: run as a subprocess
(`python -m casebank.search.onnx_export MODEL_DIR OUT_FILE`) so that the serving process never
imports torch (`onnx_cache.export`). No Django here.

torch 2.13's default exporter (dynamo) needs `onnxscript`; the TorchScript exporter used here
needs only `onnx`, both work offline. Attention runs "eager" for the export: the SDPA path turns
tensor checks into constants of the trace (with a padded batch traced, an unpadded query would
take the padded branch, or the reverse).
"""
from __future__ import annotations

import inspect
import sys
import warnings
from typing import Any

import numpy as np

# Texts of several lengths in one batch, so the check covers padding; and one alone, unpadded.
CHECK_TEXTS = ["What was the total order revenue per region this year?", "refund", "word " * 300, ""]
TOLERANCE = 1e-4  # on the transformer's raw output; pooled unit vectors land well within 1e-5
OPSET = 17
EXIT_MISMATCH = 3


def export(model_dir: str, out: str) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    accepted = inspect.signature(model.forward).parameters
    names: list[str] = [name for name in ("input_ids", "attention_mask", "token_type_ids")
             if name in accepted and name in tokenizer.model_input_names]

    class Hidden(torch.nn.Module):
        """The transformer's last hidden state; pooling happens in NumPy (`onnx_encoder.pool`)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    sample = tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and trace notes
        torch.onnx.export(Hidden(), tuple(sample[name] for name in names), out, dynamo=False,
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET)
    check(model_dir, out, names)


def check(model_dir: str, out: str, names: list[str]) -> None:
    """The exported graph gives torch's hidden states on a padded batch and on a single text."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from casebank.search.onnx_encoder import load_session

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    session = load_session(out, threads=1)
    max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    for texts in (CHECK_TEXTS, CHECK_TEXTS[:1]):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            expected = model(**{name: batch[name] for name in names}).last_hidden_state.numpy()
        (got,) = session.run(None, {name: batch[name].numpy() for name in names})
        mask = batch["attention_mask"].numpy()[..., None].astype(bool)
        error = float(np.abs(np.where(mask, got - expected, 0.0)).max())
        if error > TOLERANCE:
            print(f"The ONNX graph differs from torch by {error:.2e} (> {TOLERANCE}).", file=sys.stderr)
            sys.exit(EXIT_MISMATCH)


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2])
