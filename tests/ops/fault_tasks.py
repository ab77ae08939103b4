"""Fault-injection wrappers run by a real qcluster in tests/ops/test_worker_killed.py and
test_reflection_run_killed.py.

Not test cases: importable task functions that call the real task and pause it at the moment a
crash hurts most, announcing their process id (and the id of the work they hold), so the test
can kill -9 the worker there.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


def _announce(signal_dir: str, text: str) -> None:
    signals = Path(signal_dir)
    name = f"{os.getpid()}-{uuid.uuid4().hex}"
    (signals / f".{name}").write_text(text)
    (signals / f".{name}").rename(signals / name)  # appears complete, never half written


def slow_session_outcome(session_id: str, signal_dir: str, hold_seconds: float) -> dict | None:
    """The real background log write of a session, paused after the log row is committed and
    before the session is marked logged: the moment a crash must not lose or double it."""
    from agents.sessions.tasks import record_session_outcome
    from reflection.logs import services as ingestion

    real = ingestion.logs_ingest

    def paused(**kwargs):
        result = real(**kwargs)
        _announce(signal_dir, session_id)
        time.sleep(hold_seconds)
        return result

    ingestion.logs_ingest = paused
    try:
        return record_session_outcome(session_id)
    finally:
        ingestion.logs_ingest = real


def slow_first_reflection_run(run_id: int, signal_dir: str, hold_seconds: float) -> dict:
    """The real reflection task, with the first attempt paused inside its first analysed chunk
    (cases claimed, analyses half written) so the test can kill the worker there."""
    from reflection.analysis import services
    from reflection.analysis.tasks import reflection_run_task

    if not any(Path(signal_dir).iterdir()):
        real = services._analyse_chunk

        def paused(*args, **kwargs):
            result = real(*args, **kwargs)
            _announce(signal_dir, str(run_id))
            time.sleep(hold_seconds)
            return result

        services._analyse_chunk = paused
    return reflection_run_task(run_id)
