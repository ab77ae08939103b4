from __future__ import annotations

import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from casebank.cases import services
from casebank.models import Case, CaseTerm
from casebank.search import selectors
from casebank.search import services as search_services

pytestmark = pytest.mark.django_db


def _exact_bm25(query_terms: list[str]) -> dict:
    """Textbook Okapi BM25 computed in Python from the stored postings."""
    cases = {c.id: c.search_length for c in Case.objects.all()}
    total, avgdl = len(cases), sum(cases.values()) / len(cases)
    scores: dict = {}
    for term in query_terms:
        postings = list(CaseTerm.objects.filter(term=term).values_list("case_id", "tf"))
        if not postings:
            continue
        idf = math.log(1 + (total - len(postings) + 0.5) / (len(postings) + 0.5))
        for case_id, tf in postings:
            norm = 1 - 0.75 + 0.75 * cases[case_id] / avgdl
            scores[case_id] = scores.get(case_id, 0.0) + idf * tf * 2.2 / (tf + 1.2 * norm)
    return scores


def test_scores_are_textbook_bm25_after_a_refresh(make_case):
    make_case(title="Revenue", query="revenue revenue by region")
    make_case(title="Regional revenue report", query="quarterly revenue by region and by product line")
    make_case(title="Churn", query="customer churn by segment")
    assert search_services.case_terms_refresh_impacts() == CaseTerm.objects.count()
    got = selectors.bm25_scores("revenue region", limit=10, statuses=["active"])
    expected = _exact_bm25(["revenue", "region"])
    assert got.keys() == expected.keys()
    for case_id, score in expected.items():
        assert got[case_id] == pytest.approx(score, rel=1e-6)


def test_a_search_reads_only_the_best_postings_of_a_common_term(make_case, monkeypatch):
    # Six cases share "report"; only the short ones carry it with high impact.
    best = make_case(title="Report", query="report report")
    for i in range(5):
        make_case(title=f"Long document {i}", query="report " + " ".join(f"filler{i}x{j}" for j in range(30)))
    search_services.case_terms_refresh_impacts()
    monkeypatch.setattr(selectors, "BM25_POSTINGS_BUDGET", 2)
    monkeypatch.setattr(selectors, "BM25_MIN_POSTINGS_PER_TERM", 1)
    got = selectors.bm25_scores("report", limit=10, statuses=["active"])
    assert len(got) == 2
    assert next(iter(got)) == best.id


def test_hidden_cases_ranked_first_do_not_take_the_places_of_visible_ones(make_case):
    # The status filter runs after ranking: the best visible cases must still fill the limit.
    hidden = [make_case(title="Report", query=f"report report {i}") for i in range(3)]
    for case in hidden:
        services.case_set_status(case=case, status="archived", actor="tester")
    # Distinct lengths, so distinct scores: the shortest visible ones must come first.
    visible = [make_case(title="Long report", query="report " + " ".join(["filler"] * (i + 2))) for i in range(3)]
    search_services.case_terms_refresh_impacts()
    everything = selectors.bm25_scores("report", limit=10, statuses=["active", "archived"])
    assert set(list(everything)[:3]) == {case.id for case in hidden}
    got = selectors.bm25_scores("report", limit=2, statuses=["active"])
    assert len(got) == 2 and set(got) <= {case.id for case in visible}
    expected = {case_id: score for case_id, score in _exact_bm25(["report"]).items()
                if case_id in {case.id for case in visible}}
    best_two = sorted(expected, key=expected.get, reverse=True)[:2]
    assert list(got) == best_two
    for case_id in best_two:
        assert got[case_id] == pytest.approx(expected[case_id], rel=1e-6)


@pytest.mark.postgres(reason="PostgreSQL plan")
def test_corpus_statistics_are_an_index_only_scan(make_case):
    # The table is wide (inline embeddings): a sequential scan would cost every first search
    # after a case write a read of the whole table.
    case = make_case()
    with CaptureQueriesContext(connection) as queries:
        assert selectors.bm25_stats(fresh=True) == (1, float(case.search_length))
    with connection.cursor() as cursor:
        # A tiny, unvacuumed table favours other plans; what matters is that the index covers it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {queries.captured_queries[-1]['sql']}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using case_search_length_idx" in plan
