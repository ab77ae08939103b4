"""Task paths of the layout before 2026-12, kept for one release so that queued tasks and stored
schedules still resolve (`setup_schedules` rewrites schedules to the new paths)."""
from casebank.cases.tasks import record_case_use

__all__ = ["record_case_use"]
