"""django-q2 tasks: thin functions that take ids."""
from __future__ import annotations

from agents.models import Session
from agents.runtime import supervisor
from agents.sessions import services


def run_session(session_id: str) -> str | None:
    session = supervisor.run_session(session_id=session_id)
    return None if session is None else session.status


def record_session_outcome(session_id: str) -> dict | None:
    session = Session.objects.select_related("case", "created_case").filter(pk=session_id).first()
    if session is None or session.finished_at is None or session.log_id is not None:
        return None  # unknown, not finished, or already logged (by the sweeper or an earlier delivery)
    return services.session_outcome_record(session=session)


def sweep_sessions_task() -> dict[str, int]:
    """Every minute: hand out again the session work that lost tasks left behind."""
    return services.sessions_sweep()
