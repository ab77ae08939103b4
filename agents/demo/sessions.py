"""A demo session, run for real by the supervisor over the demo analytics database, so a first
look at admin finds a completed session with an answer, its rows as a table and a chart."""
from __future__ import annotations

from agents.models import Session
from agents.runtime import supervisor
from agents.sessions import services

DEMO_ACTOR = "seed_demo"
DEMO_QUERY = "Which region had the highest order revenue?"
# Caller SQL (same guard as Text2SQL): the demo needs no LLM.
DEMO_SQL = (
    "SELECT region, ROUND(SUM(total), 2) AS revenue, COUNT(*) AS orders FROM orders "
    "GROUP BY region ORDER BY revenue DESC"
)


def seed_session() -> Session | None:
    """Run the demo session once (None when one exists already): claimed, planned, executed,
    evaluated and answered in this process, its execution log written."""
    if Session.objects.filter(created_by=DEMO_ACTOR).exists():
        return None
    session = services.session_create(query=DEMO_QUERY, actor=DEMO_ACTOR, sql=DEMO_SQL)
    finished = supervisor.run_session(session_id=session.pk) or session
    if finished.finished_at is not None and finished.log_id is None:
        services.session_outcome_record(session=Session.objects.get(pk=finished.pk))
    return Session.objects.get(pk=session.pk)
