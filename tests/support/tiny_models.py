"""Small sentence-transformers models built on the spot: no model hub, a few KB of weights."""
from __future__ import annotations

import json
from pathlib import Path

WORDS = "monthly revenue region churn customers refund policy annual backups retained days".split()
MAX_SEQ_LENGTH = 128


def tiny_sentence_model(path: Path, *, dimensions: int = 32, pooling: str = "mean", normalize: bool = False,
                        classic: bool = True, seed: int = 3) -> str:
    """A one-layer BERT with a hand-written vocabulary and `pooling` ("mean" or "cls"), optionally
    normalised; returns its directory.

    `classic`: laid out as the packaged all-MiniLM-L6-v2 is (and as sentence-transformers saved
    models before 6.0: the layout `encoder.plain_layout` reads and the ONNX backend runs); else as
    sentence-transformers 6 saves it, which embeds through sentence-transformers itself.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = path / "st"
    bert = root if classic else path / "bert"
    bert.mkdir(parents=True)
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(bert / "vocab.txt")).save_pretrained(bert)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=5 + len(WORDS), hidden_size=dimensions, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(bert)
    if classic:
        _classic_modules(root, dimensions=dimensions, pooling=pooling, normalize=normalize)
        return str(root)
    from sentence_transformers import SentenceTransformer, models

    word = models.Transformer(str(bert))
    modules = [word, models.Pooling(dimensions, pooling_mode=pooling)]
    if normalize:
        modules.append(models.Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(root))
    return str(root)


def _classic_modules(root: Path, *, dimensions: int, pooling: str, normalize: bool) -> None:
    names = [("", "Transformer"), ("1_Pooling", "Pooling")] + ([("2_Normalize", "Normalize")] if normalize else [])
    modules = [{"idx": i, "name": str(i), "path": folder, "type": f"sentence_transformers.models.{kind}"}
               for i, (folder, kind) in enumerate(names)]
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False}))
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dimensions, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }))
    if normalize:
        (root / "2_Normalize").mkdir()
