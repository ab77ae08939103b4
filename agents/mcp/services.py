"""The tools' one write: log a run's outcome through the execution-log ingestion (its validation,
its idempotency by id, its early reflection trigger), exactly as `POST /api/logs/` stores it."""
from __future__ import annotations

import time
from uuid import UUID

from agents.mcp.outputs import LoggedRun
from casebank.models import ApiKey
from core.errors import InvalidInput
from reflection import metrics
from reflection.logs import services as ingestion

# The ingestion's field names, as the tool's arguments call them.
ARGUMENT_NAMES = {"execution_time_ms": "duration_ms", "case_version": "version", "id": "run_id"}


def run_log(
    *, api_key: ApiKey, case_id: UUID, success: bool, duration_ms: float, error_type: str | None = None,
    error_message: str | None = None, tokens_in: int | None = None, tokens_out: int | None = None,
    version: int | None = None, run_id: UUID | None = None,
) -> LoggedRun:
    item = {
        "case_id": str(case_id), "success": success, "execution_time_ms": duration_ms, "error_type": error_type,
        "error_message": error_message, "tokens_in": tokens_in, "tokens_out": tokens_out, "case_version": version,
        "id": str(run_id) if run_id else None,
    }
    started = time.perf_counter()
    try:
        records = ingestion.parse_batch([{name: value for name, value in item.items() if value is not None}])
    except InvalidInput as error:
        problems = error.errors.get("0") or {}
        detail = "; ".join(f"{ARGUMENT_NAMES.get(name, name)}: {message}" for name, message in problems.items())
        raise InvalidInput(detail or error.message) from None
    # Owned by the calling key, as `POST /api/logs/` stores them: the key lists its own logs.
    result = ingestion.logs_ingest(records=records, api_key_id=api_key.pk)
    metrics.record_ingestion(created=result.created, duplicates=result.duplicates, seconds=time.perf_counter() - started)
    record = records[0]
    return LoggedRun(run_id=str(record.id), case_id=str(case_id), case_version=record.case_version,
                     stored=result.created == 1)
