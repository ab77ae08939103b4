"""Task paths of the layout before 2026-12, kept for one release so that queued tasks and stored
schedules still resolve (`setup_schedules` rewrites schedules to the new paths)."""
from agents.sessions.tasks import record_session_outcome, run_session, sweep_sessions_task

__all__ = ["record_session_outcome", "run_session", "sweep_sessions_task"]
