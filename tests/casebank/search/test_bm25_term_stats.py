"""`CaseTermStat`: the per-term document frequencies BM25 reads stay equal to a recount of the
postings through every write path (create, edit, rollback, status change, consolidation)."""
from __future__ import annotations

import pytest
from django.db.models import Count

from casebank.cases import services
from casebank.consolidation.services import case_archive, case_restore
from casebank.models import ArchiveReason, Case, CaseStatus, CaseTerm, CaseTermStat
from casebank.search import selectors
from casebank.search import services as search_services

pytestmark = pytest.mark.django_db


def _recount() -> dict[str, int]:
    return dict(CaseTerm.objects.values_list("term").annotate(df=Count("id")))


def _stored() -> dict[str, int]:
    return dict(CaseTermStat.objects.values_list("term", "df"))


def test_it_counts_each_term_once_per_case_on_create(make_case):
    make_case(title="Revenue", query="revenue revenue by region")
    make_case(title="Churn by region", query="customer churn by segment")
    assert _stored() == _recount()
    assert _stored()["revenue"] == 1
    assert _stored()["region"] == 2


def test_an_edit_moves_only_the_terms_that_changed(make_case):
    make_case(title="Revenue", query="revenue by region")
    edited = make_case(title="Churn", query="customer churn by region")
    services.case_update(case=edited, actor="tester", query="kubernetes pods restarting by region")
    stored = _stored()
    assert stored == _recount()
    assert "customer" not in stored
    assert stored["churn"] == 1  # still in the title
    assert stored["kubernetes"] == 1
    assert stored["region"] == 2


def test_a_rollback_restores_the_old_terms(make_case):
    case = make_case(title="Churn", query="customer churn by segment")
    case = services.case_update(case=case, actor="tester", query="kubernetes pods restarting")
    services.case_rollback(case=case, to_version=1, actor="tester")
    assert _stored() == _recount()
    assert "kubernetes" not in _stored()
    assert _stored()["churn"] == 1


def test_metadata_and_status_changes_leave_frequencies_alone(make_case):
    # Document frequencies count every case, like the corpus size, whatever its status.
    case = make_case(title="Revenue", query="revenue by region")
    before = _stored()
    case = services.case_update(case=case, actor="tester", tags=["finance"], category="finance")
    services.case_set_status(case=case, status=CaseStatus.DEPRECATED, actor="tester")
    assert _stored() == before == _recount()


def test_archiving_a_duplicate_and_restoring_it_keep_frequencies_right(make_case):
    kept = make_case(title="Revenue by region", query="monthly revenue by region")
    duplicate = make_case(title="Revenue by region", query="monthly revenue by region")
    case_archive(case_id=duplicate.pk, reason=ArchiveReason.DUPLICATE, actor="tester",
                 merge_into=kept.pk, enforce_safety=False)
    assert _stored() == _recount()
    assert _stored()["revenue"] == 2
    case_restore(case_id=duplicate.pk, actor="tester")
    assert _stored() == _recount()


def test_a_rebuild_repairs_counts_after_writes_that_bypassed_the_services(make_case):
    make_case(title="Revenue", query="revenue by region")
    gone = make_case(title="Churn", query="customer churn by region")
    # A bulk load (COPY) or a raw delete does not go through `_index_terms`.
    Case.objects.filter(pk=gone.pk).delete()
    CaseTermStat.objects.filter(term="revenue").update(df=7)
    assert _stored() != _recount()
    assert search_services.case_term_stats_rebuild() == len(_recount())
    assert _stored() == _recount()


def test_search_reads_frequencies_from_the_table(make_case):
    rare = make_case(title="Refund policy", query="refund policy for annual plans")
    make_case(title="Revenue", query="revenue by region")
    make_case(title="Revenue again", query="revenue by quarter")
    assert selectors._document_frequencies(["refund", "revenue", "unknown"]) == {"refund": 1, "revenue": 2}
    # The table is what the ranking uses: inflate a term's df and its weight drops.
    before = selectors.bm25_scores("refund", limit=5, statuses=["active"])[rare.id]
    CaseTermStat.objects.filter(term="refund").update(df=3)
    assert selectors.bm25_scores("refund", limit=5, statuses=["active"])[rare.id] < before
