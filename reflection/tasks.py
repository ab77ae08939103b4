"""Task paths of the layout before 2026-12, kept for one release so that queued tasks and stored
schedules still resolve (`setup_schedules` rewrites schedules to the new paths)."""
from reflection.analysis.tasks import (
    daily_reflection_task,
    early_reflection_task,
    reflection_run_task,
    retention_task,
    sweep_runs_task,
)
from reflection.suggestions.tasks import deferred_suggestions_task, notify_regression, notify_suggestion_created

__all__ = [
    "daily_reflection_task", "deferred_suggestions_task", "early_reflection_task", "notify_regression",
    "notify_suggestion_created", "reflection_run_task", "retention_task", "sweep_runs_task",
]
