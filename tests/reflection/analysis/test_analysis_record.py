"""Analysing a case stores history, updates its metrics, and sets or clears the warning flag."""
from __future__ import annotations

from datetime import timedelta

import pytest

from casebank.models import Case, CaseStatus, CaseStatusChange
from reflection.analysis.services import case_analysis_record
from reflection.models import CaseAnalysis
from tests.reflection.factories import NOW, add_logs

pytestmark = pytest.mark.django_db


def test_it_sets_warning_below_half_and_clears_it_on_recovery(make_case):
    case = make_case()
    add_logs(case, count=2, success=True, age=timedelta(days=2))
    add_logs(case, count=3, success=False, age=timedelta(days=2), error_type="E")

    record = case_analysis_record(case_id=case.pk, now=NOW)

    case.refresh_from_db()
    assert (case.status, case.success_rate, case.run_count) == (CaseStatus.WARNING, 0.4, 5)
    change = CaseStatusChange.objects.get(case=case)
    assert (change.from_status, change.to_status, change.actor) == ("active", "warning", "reflection")
    assert record.result["success_rate"] == 0.4 and record.success_rate == 0.4

    add_logs(case, count=2, success=True, age=timedelta(hours=1))  # 4 of 7 = 0.5714
    case_analysis_record(case_id=case.pk, now=NOW)

    case.refresh_from_db()
    assert (case.status, case.success_rate, case.run_count) == (CaseStatus.ACTIVE, 0.5714, 7)
    assert CaseStatusChange.objects.filter(case=case, to_status="active", actor="reflection").count() == 1


def test_it_keeps_a_history_of_analyses_for_charts(make_case):
    case = make_case()
    add_logs(case, count=1, success=True)
    case_analysis_record(case_id=case.pk, now=NOW)
    add_logs(case, count=1, success=False, error_type="E")
    case_analysis_record(case_id=case.pk, now=NOW)

    history = list(CaseAnalysis.objects.filter(case=case).order_by("created_at").values_list("success_rate", "total_executions"))
    assert history == [(1.0, 1), (0.5, 2)]


def test_it_leaves_a_case_without_logs_unanalysed(make_case):
    case = make_case()
    record = case_analysis_record(case_id=case.pk, now=NOW)
    case.refresh_from_db()
    assert record.total_executions == 0
    assert (case.success_rate, case.status) == (None, CaseStatus.ACTIVE)


def test_it_never_revives_an_archived_case(make_case):
    from casebank.cases import services

    case = make_case()
    services.case_set_status(case=case, status=CaseStatus.ARCHIVED, actor="tester")
    add_logs(case, count=1, success=False, error_type="E")
    case_analysis_record(case_id=case.pk, now=NOW)
    assert Case.objects.get(pk=case.pk).status == CaseStatus.ARCHIVED
