"""django-q2 tasks of consolidation: thin, calling the services."""
from __future__ import annotations

from casebank.consolidation.services import consolidation_run


def consolidation_task() -> dict:
    """The weekly schedule: a dry run whose candidates an operator reviews (SPEC: dry by default)."""
    report = consolidation_run(dry_run=True, actor="schedule")
    return {"candidates": len(report["actions"])}
