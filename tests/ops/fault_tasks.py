"""Fault-injection wrappers run by a real qcluster in tests/ops/test_worker_killed.py.

Not test cases: importable task functions that call the real task inside a transaction and
hold it open, announcing their process id, so the test can kill -9 the worker mid-write.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from django.db import transaction

from reflection.tasks import logs_write_task


def slow_logs_write(items: list[dict], signal_dir: str, hold_seconds: float) -> int:
    with transaction.atomic():
        created = logs_write_task(items)
        # Rows are written but not committed: the moment a crash must not lose or double them.
        marker = Path(signal_dir) / f"{os.getpid()}-{uuid.uuid4().hex}"
        marker.write_text(items[0]["id"])
        time.sleep(hold_seconds)
    return created


def slow_first_reflection_run(run_id: int, signal_dir: str, hold_seconds: float) -> dict:
    """The real reflection task, with the first attempt paused inside its first analysed chunk
    (cases claimed, analyses half written) so the test can kill the worker there."""
    from reflection import services
    from reflection.tasks import reflection_run_task

    signals = Path(signal_dir)
    if not any(signals.iterdir()):
        real = services._analyse_chunk

        def paused(*args, **kwargs):
            result = real(*args, **kwargs)
            (signals / f"{os.getpid()}-{uuid.uuid4().hex}").write_text(str(run_id))
            time.sleep(hold_seconds)
            return result

        services._analyse_chunk = paused
    return reflection_run_task(run_id)
