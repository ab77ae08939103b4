"""A case in warning keeps its place by relevance and is marked, never buried (issue #18)."""
from __future__ import annotations

import pytest

from agents.demo import cases as demo_cases
from casebank.cases import services as case_services
from casebank.models import Case, CaseStatus
from casebank.search.selectors import case_search

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_bank(db):
    demo_cases.seed_cases()
    churn = Case.objects.get(pk=demo_cases.demo_case_id("churn-drivers"))
    # As reflection leaves it: 40% over its runs, flagged.
    Case.objects.filter(pk=churn.pk).update(success_rate=0.40, run_count=250, reuse_helped=40.0, reuse_harmed=60.0)
    case_services.case_set_status(case=churn, status=CaseStatus.WARNING, actor="reflection", reason="success rate 40%")
    Case.objects.exclude(pk=churn.pk).update(success_rate=0.92, run_count=250, reuse_helped=92.0, reuse_harmed=8.0)
    return churn


def test_it_keeps_a_warning_case_with_the_best_match_first_and_marks_it(demo_bank, api):
    hits = case_search(query="why did customers churn", mode="hybrid", k=4)
    assert hits[0].case.id == demo_bank.id
    assert hits[0].similarity is not None and hits[0].similarity > 0.8
    assert hits[0].role == "warning" and hits[0].warning
    assert all(hit.role == "example" for hit in hits[1:])

    results = api.post("/api/cases/search/", {"query": "why did customers churn", "k": 4}, format="json").json()["results"]
    assert results[0]["title"] == "Churn drivers"
    assert results[0]["warning"] is True and results[0]["role"] == "warning"
    assert {r["role"] for r in results[1:]} == {"example"}


def test_it_lets_the_track_record_order_near_ties_only(make_case):
    steady = make_case(title="Revenue by region A", query="monthly revenue by region")
    shaky = make_case(title="Revenue by region B", query="monthly revenue by region")
    Case.objects.filter(pk=steady.pk).update(success_rate=0.95, run_count=200, reuse_helped=95.0, reuse_harmed=5.0)
    Case.objects.filter(pk=shaky.pk).update(success_rate=0.30, run_count=200, reuse_helped=30.0, reuse_harmed=70.0)
    hits = case_search(query="monthly revenue by region", mode="bm25", k=2)
    # Equal relevance: the better track record wins, by a bounded amount.
    assert [hit.case.id for hit in hits] == [steady.id, shaky.id]
    assert hits[0].relevance == pytest.approx(hits[1].relevance)
    assert hits[1].score >= hits[0].score * 0.98
