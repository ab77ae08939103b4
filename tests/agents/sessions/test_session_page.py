"""The admin session page reads like an answer: the text with linked citations, the SQL, the
rows as a bounded table, a server-side bar chart, the sources, errors and a readable timeline,
links to the logs and cases; read-only, and closed to staff without the view permission."""
from __future__ import annotations

import re

import pytest

from agents.models import Session
from agents.sessions import presentation, services
from tests.conftest import grant

QUESTION = "Which region had the highest order revenue?"
SQL = "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC"


def _page(client, session_id) -> str:
    response = client.get(f"/admin/agents/session/{session_id}/change/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_it_shows_answer_table_chart_sources_and_timeline_of_a_real_session(
        api, admin_client_logged_in, analytics_db, no_llm):
    created = api.post("/api/sessions/", {"query": QUESTION, "sql": SQL}, format="json")
    assert created.status_code == 202, created.content
    session = Session.objects.get(pk=created.json()["session_id"])
    assert session.status == "completed", session.errors
    rows = session.results["data_analysis"]["rows"]

    page = _page(admin_client_logged_in, session.pk)
    answer = page.split('<div class="answer">')[1].split("</div>")[0]
    assert '<a href="#source-1" class="citation">[1]</a>' in answer  # the citation leads to its source
    assert '<li id="source-1" value="1"><a href="#result">SQL result</a>' in page
    assert "GROUP BY region" in page.split('<pre class="sql">')[1]
    table = page.split('<section id="result">')[1].split("</section>")[0]
    assert "<th>region</th><th>revenue</th>" in table
    assert len(re.findall(r"<tr><td", table)) == len(rows) == 4
    assert f"<td>{rows[0][0]}</td>" in table and '<td class="num">' in table
    chart = page.split('class="bar-chart"')[1].split("</svg>")[0]
    assert chart.count("<rect") == 4 and rows[0][0] in chart  # one bar per region, labelled
    assert "revenue by region" in page
    # The timeline: phases in order, time offsets, the agent by name, no raw JSON.
    timeline = page.split("<h2>Timeline</h2>")[1].split("</table>")[0]
    assert "plan from" in timeline and "<td>data_analysis</td>" in timeline and "execution log written" in timeline
    assert re.search(r"\+\d+\.\d\d s", timeline)
    assert '{"' not in timeline
    # Links to the log(s), read-only.
    assert f"/admin/reflection/executionlog/?session_id={session.pk}" in page
    assert f"/admin/reflection/executionlog/{session.log_id}/change/" in page
    assert 'name="_save"' not in page and "deletelink" not in page
    logs = admin_client_logged_in.get(f"/admin/reflection/executionlog/?session_id={session.pk}").content.decode()
    assert f"/admin/reflection/executionlog/{session.log_id}/change/" in logs


def _session_with_rows(monkeypatch, columns: list, rows: list, *, answer: str = "See [1] and [7].") -> Session:
    monkeypatch.setattr("core.task_queue.async_task", lambda *args, **kwargs: None)
    session = services.session_create(query="rows", actor="tester")
    data = {"sql": "SELECT 1", "columns": columns, "rows": rows, "row_count": len(rows), "truncated": False}
    services.session_results_record(session=session, ran={"data_analysis": True}, results={"data_analysis": data},
                                    errors={"data_analysis": {"type": "Slow", "message": "x" * 5000}}, usages=[],
                                    timings_ms={})
    services.session_finish(session=session, passed=True, answer=answer, errors=session.errors, timings_ms={},
                            answer_summary={"method": "extractive", "found": True,
                                            "sources": [{"n": 1, "type": "data", "id": "k", "title": "SQL result"}]})
    return session


@pytest.mark.django_db
def test_it_shows_null_cells_and_draws_no_bar_for_them(admin_client_logged_in, monkeypatch):
    session = _session_with_rows(monkeypatch, ["region", "revenue"], [["North", 10.5], ["South", None], [None, 3]])
    page = _page(admin_client_logged_in, session.pk)
    assert '<td class="null">null</td>' in page
    chart = page.split('class="bar-chart"')[1].split("</svg>")[0]
    assert chart.count("<rect") == 2 and "no value" in chart
    # A citation of a source that is not listed stays plain text, not a dead link.
    assert '<a href="#source-1" class="citation">[1]</a> and [7].' in page


@pytest.mark.django_db
def test_it_stores_non_finite_cells_as_null_and_names_them_when_shown():
    # Stored sessions hold JSON (non-finite numbers become null on save: test_session_non_finite);
    # a value that reaches the page some other way is still named, never drawn.
    assert [presentation.cell_text(v) for v in (float("nan"), float("inf"), float("-inf"), None)] == [
        "NaN", "∞", "−∞", "null"]
    svg = presentation.result_chart({"columns": ["k", "v"], "rows": [["a", float("nan")], ["b", 2.0]]})
    assert svg is not None and svg[0].count("<rect") == 1 and "no value" in svg[0]


@pytest.mark.django_db
def test_it_bounds_huge_cells_and_long_results(admin_client_logged_in, monkeypatch):
    huge = "<b>" + "y" * 100_000
    rows = [[f"r{i}", i, huge if i == 0 else "short"] for i in range(5_000)]
    session = _session_with_rows(monkeypatch, ["name", "n", "note"], rows)
    page = _page(admin_client_logged_in, session.pk)
    assert "y" * 300 not in page and "&lt;b&gt;" + "y" * 190 in page  # cut, and escaped
    assert "<b>yyy" not in page
    assert "First 50 of 5,000 rows." in page
    table = page.split('<section id="result">')[1].split("</section>")[0]
    assert len(re.findall(r"<tr><td", table)) == 50
    chart = page.split('class="bar-chart"')[1].split("</svg>")[0]
    assert chart.count("<rect") == presentation.CHART_BARS and "first 30 of 5000 rows" in page
    assert "x" * 400 not in page  # a long error message is cut too
    assert len(page) < 200_000


@pytest.mark.django_db
def test_it_answers_403_to_staff_without_the_view_permission(client, staff_user, monkeypatch):
    session = _session_with_rows(monkeypatch, ["a", "b"], [["x", 1]])
    client.force_login(staff_user)
    assert client.get(f"/admin/agents/session/{session.pk}/change/").status_code == 403
    grant(staff_user, "view_session")
    page = _page(client, session.pk)
    assert 'class="answer"' in page and 'name="_save"' not in page and "deletelink" not in page
    assert client.get(f"/admin/agents/session/{session.pk}/delete/").status_code == 403
