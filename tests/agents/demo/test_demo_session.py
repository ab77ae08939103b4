"""The demo's session: run for real over the demo analytics database, completed with an answer,
rows for the table and a label + number column pair for the chart; seeded once."""
from __future__ import annotations

import pytest

from agents.demo.sessions import seed_session
from agents.models import Session
from agents.sessions import presentation
from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_runs_one_completed_session_with_a_table_and_a_chart(analytics_db, knowledge, no_llm):
    session = seed_session()
    assert session is not None and session.status == "completed", session and session.errors
    assert session.answer and "[1]" in session.answer
    page = presentation.session_page(session)
    assert page.table is not None and len(page.table.rows) == 4 and page.table.columns[:2] == ["region", "revenue"]
    assert page.chart is not None and page.chart.count("<rect") == 4
    assert ExecutionLog.objects.filter(pk=session.log_id, session_id=session.pk).exists()
    assert seed_session() is None and Session.objects.count() == 1
