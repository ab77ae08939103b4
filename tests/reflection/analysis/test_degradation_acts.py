"""A significant recent drop acts (issue #15): a case that fell from ~95 % to ~40 % within a
day (success_rate_drop, z ~ -13.7) while its 30-day rate is still 77 % gets `warning` and a
suggestion; it stayed `active` with neither."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from casebank.models import Case, CaseStatus
from reflection.analysis.engine import analyze_case
from reflection.analysis.services import case_analysis_record, reflection_run_here
from reflection.models import ExecutionLog, Suggestion, SuggestionStatus
from tests.reflection.suggestion_helpers import PLAN

pytestmark = pytest.mark.django_db


def _runs(case, *, runs: int, successes: int, age: timedelta) -> None:
    now = timezone.now()
    ExecutionLog.objects.bulk_create([
        ExecutionLog(case=case, case_version=case.version, success=i < successes, execution_time_ms=400,
                     error_type="" if i < successes else "TimeoutError",
                     error_message="" if i < successes else f"query {i} timed out after 30 s",
                     created_at=now - age - timedelta(minutes=i % 600))
        for i in range(runs)
    ])


def _degrading_case(make_case):
    case = make_case(plan=PLAN)
    _runs(case, runs=152, successes=144, age=timedelta(days=15))  # weeks ago: 95 %
    _runs(case, runs=300, successes=285, age=timedelta(days=3))  # the week before: 95 %
    _runs(case, runs=220, successes=88, age=timedelta(hours=1))  # the last 24 h: 40 %
    return case


def test_the_degrading_case_is_flagged_as_the_issue_measured(make_case):
    case = _degrading_case(make_case)
    analysis = analyze_case(case_id=case.pk)
    assert analysis["success_rate"] == pytest.approx(0.77, abs=0.005)
    [drop] = [a for a in analysis["anomalies"] if a["type"] == "success_rate_drop"]
    assert drop["z"] == pytest.approx(-13.7, abs=0.1)


def test_a_significant_drop_sets_warning_though_the_30_day_rate_is_77_percent(make_case):
    case = _degrading_case(make_case)

    case_analysis_record(case_id=case.pk)

    assert Case.objects.get(pk=case.pk).status == CaseStatus.WARNING


def test_the_degrading_case_gets_a_suggestion_from_reflect(make_case, capsys):
    case = _degrading_case(make_case)

    call_command("reflect", "--case", str(case.pk), "--suggest")

    suggestion = Suggestion.objects.get(case=case)
    assert suggestion.status == SuggestionStatus.PENDING


def test_a_batch_run_flags_and_suggests_too(make_case):
    case = _degrading_case(make_case)

    reflection_run_here(requested_by="test")

    assert Case.objects.get(pk=case.pk).status == CaseStatus.WARNING
    assert Suggestion.objects.filter(case=case, status=SuggestionStatus.PENDING).exists()


def test_a_stable_case_above_half_is_left_alone(make_case):
    case = make_case(plan=PLAN)
    _runs(case, runs=300, successes=231, age=timedelta(days=3))
    _runs(case, runs=100, successes=77, age=timedelta(hours=1))

    reflection_run_here(requested_by="test")

    assert Case.objects.get(pk=case.pk).status == CaseStatus.ACTIVE
    assert not Suggestion.objects.filter(case=case).exists()
