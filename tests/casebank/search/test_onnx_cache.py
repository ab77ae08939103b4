"""The exported ONNX graph is kept on disk by model and content, reused, written whole even when
several processes start at once, and exported again when it is broken (issue #14)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from safetensors.numpy import load_file, save_file

from casebank.search import embeddings
from casebank.search.onnx_cache import ExportFailed, cache_file, onnx_file, onnx_session
from tests.support.tiny_models import tiny_sentence_model


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return tiny_sentence_model(tmp_path_factory.mktemp("model"), dimensions=16)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> Path:
    """A cache holding the model's graph, exported once for this module: each test copies it."""
    cache = tmp_path_factory.mktemp("exported")
    target = cache_file(model, cache)
    left = cache / f"{target.name}.abc123.partial"  # as a killed export leaves it
    left.write_bytes(b"half a model")
    path, exported_now = onnx_file(model, cache)
    assert exported_now and path == target and not left.exists()
    return cache


def test_it_exports_once_and_reuses_the_file(model, exported, tmp_path):
    cache = shutil.copytree(exported, tmp_path / "cache")
    first = cache_file(model, cache)
    modified = first.stat().st_mtime_ns
    again, exported_again = onnx_file(model, cache)
    assert (again, exported_again) == (first, False)
    assert first.stat().st_mtime_ns == modified
    assert [p.name for p in cache.iterdir() if p.suffix not in (".onnx", ".lock")] == []  # no partial left


def test_the_file_is_keyed_by_the_model_content(tmp_path):
    model = tiny_sentence_model(tmp_path / "model", dimensions=16)
    cache = tmp_path / "cache"
    before = cache_file(model, cache)
    assert cache_file(model, cache) == before
    weights = f"{model}/model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights)
    assert cache_file(model, cache) != before  # retrained weights get their own graph


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_broken_file_is_exported_again(model, exported, tmp_path, damage):
    cache = shutil.copytree(exported, tmp_path / "cache")
    target = cache_file(model, cache)
    good = target.read_bytes()
    target.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"not a model" * 100)
    session = onnx_session(model, cache, threads=1)
    assert [node.name for node in session.get_inputs()][:2] == ["input_ids", "attention_mask"]
    assert target.stat().st_size == len(good)


def test_processes_starting_together_export_once(model, tmp_path):
    cache = tmp_path / "cache"  # empty: every process finds no graph
    code = ("import json, sys; from pathlib import Path; from casebank.search.onnx_cache import onnx_file; "
            "path, exported = onnx_file(sys.argv[1], Path(sys.argv[2])); print(json.dumps([str(path), exported]))")
    processes = [subprocess.Popen([sys.executable, "-c", code, model, str(cache)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=os.getcwd()) for _ in range(3)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len({path for path, _ in results}) == 1
    assert sorted(exported for _, exported in results) == [False, False, True]
    onnx_session(model, cache, threads=1)  # whole, and it loads


def test_a_model_that_failed_to_export_is_not_tried_at_every_start(tmp_path):
    model = tiny_sentence_model(tmp_path / "model", dimensions=16)
    os.remove(f"{model}/model.safetensors")  # no weights: the export fails
    cache = tmp_path / "cache"
    with pytest.raises(ExportFailed, match="failed:"):
        onnx_file(model, cache)
    with pytest.raises(ExportFailed, match="failed before"):
        onnx_file(model, cache)  # from the note, no subprocess
    with pytest.raises(ExportFailed, match="failed:"):
        onnx_file(model, cache, retry=True)  # prepare_embeddings tries again


@pytest.fixture
def configured(settings, tmp_path):
    model = tiny_sentence_model(tmp_path / "model", dimensions=16)
    embeddings._load_model.cache_clear()
    settings.EMBEDDING_MODEL = model
    settings.EMBEDDING_CACHE_DIR = tmp_path / "cache"
    yield settings
    embeddings._load_model.cache_clear()


def test_prepare_embeddings_exports_ahead_then_reuses(configured):
    out = io.StringIO()
    call_command("prepare_embeddings", stdout=out)
    assert "ONNX graph exported to" in out.getvalue()
    out = io.StringIO()
    call_command("prepare_embeddings", stdout=out)
    assert "ONNX graph already in" in out.getvalue()


def test_prepare_embeddings_has_nothing_to_do_on_torch(configured):
    configured.EMBEDDING_BACKEND = "torch"
    out = io.StringIO()
    call_command("prepare_embeddings", stdout=out)
    assert "nothing to prepare" in out.getvalue()
    assert not configured.EMBEDDING_CACHE_DIR.exists()


def test_prepare_embeddings_warns_when_the_model_does_not_export(configured):
    os.remove(f"{configured.EMBEDDING_MODEL}/model.safetensors")
    err = io.StringIO()
    call_command("prepare_embeddings", stdout=io.StringIO(), stderr=err)
    assert "Processes will embed on torch" in err.getvalue()
