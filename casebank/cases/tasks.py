"""django-q2 tasks: thin functions that take ids and call services."""
from __future__ import annotations

from datetime import datetime

from casebank.cases import services


def record_case_use(case_ids: list[str], used_at: datetime | None = None) -> int:
    return services.case_record_use(case_ids=case_ids, used_at=used_at)
