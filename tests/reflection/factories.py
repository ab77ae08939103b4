"""Small helpers to write execution logs with exact timestamps for hand-computed tests."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from reflection.models import ExecutionLog

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=dt_timezone.utc)


def add_logs(case, *, count: int = 1, success: bool = True, ms: int = 100, age: timedelta = timedelta(hours=1),
             error_type: str = "", error_message: str = "", now: datetime = NOW,
             ingested_at: datetime | None = None, version: int = 1) -> list[ExecutionLog]:
    created = now - age
    logs = [
        ExecutionLog(
            id=uuid.uuid4(),
            case_id=case.pk,
            case_version=version,
            success=success,
            error_type=error_type,
            error_message=error_message,
            execution_time_ms=ms,
            created_at=created,
            ingested_at=ingested_at or created,
        )
        for _ in range(count)
    ]
    return ExecutionLog.objects.bulk_create(logs)
