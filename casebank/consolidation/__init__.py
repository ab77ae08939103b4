"""Weekly consolidation: archive weak, idle and duplicate cases; restore them."""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # `casebank.consolidation.consolidation_task` is the task path before 2026-12, kept for one
    # release for queued tasks and stored schedules; imported lazily, after the apps are loaded.
    if name == "consolidation_task":
        from casebank.consolidation.tasks import consolidation_task

        return consolidation_task
    raise AttributeError(name)
