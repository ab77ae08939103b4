"""Which version a log ran when its sender did not say: the version of its experiment arm.

A log without `case_version` for a case with a running experiment is attributed from its
assignment key (`context.assignment_key` when sent, else its `session_id`) by the same
deterministic `assign_arm` that served the plan, so nothing is stored per key. A log with no
key at all gets the current version (docs/experiments.md).
"""
from __future__ import annotations

from reflection.experiments.selectors import RunningExperiment
from reflection.logs.decoding import LogRecord


def assignment_key_of(record: LogRecord) -> str | None:
    key = record.context.get("assignment_key") if record.context else None
    if isinstance(key, str) and key:
        return key
    return str(record.session_id) if record.session_id is not None else None


def attributed_version(record: LogRecord, *, current: int, experiment: RunningExperiment | None) -> int:
    if experiment is None or experiment.base_version != current:
        return current
    key = assignment_key_of(record)
    return current if key is None else experiment.version_of(key)
