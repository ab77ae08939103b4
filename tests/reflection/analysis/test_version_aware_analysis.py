"""An analysis judges the version the case serves now (issue #15): the runs of earlier versions
and of an experiment's candidate are shown beside it for comparison, never pooled into it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from casebank.cases import services as case_services
from casebank.models import Case, CaseStatus
from reflection.analysis.engine import analyze_case
from reflection.analysis.services import case_analysis_record
from tests.reflection.experiments.support import approved_experiment
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db

V2_PLAN = [{"agent": "data_analysis", "action": "SQL aggregate by month and region", "timeout_s": 30}]


def _case_at_v2(make_case) -> Case:
    """v1: 20 of 100 runs succeeded, slow timeouts; v2: 45 of 50, quick parse errors."""
    case = make_case()
    now = timezone.now()
    add_logs(case, count=20, success=True, ms=100, now=now, age=timedelta(days=3))
    add_logs(case, count=80, success=False, ms=3_000, now=now, age=timedelta(days=3), error_type="TimeoutError",
             error_message="timed out after 30 s")
    case = case_services.case_update(case=case, actor="editor", plan=V2_PLAN)
    assert case.version == 2
    add_logs(case, count=45, success=True, ms=200, now=now, age=timedelta(hours=2), version=2)
    add_logs(case, count=5, success=False, ms=200, now=now, age=timedelta(hours=2), version=2,
             error_type="ParseError", error_message="bad row 17")
    return case


def test_the_figures_are_the_current_versions_and_earlier_ones_are_compared(make_case):
    case = _case_at_v2(make_case)

    analysis = analyze_case(case_id=case.pk)

    assert analysis["case_version"] == 2
    assert (analysis["total_executions"], analysis["successes"], analysis["success_rate"]) == (50, 45, 0.9)
    assert [(e["error_type"], e["count"], e["percentage"]) for e in analysis["common_errors"]] == [("ParseError", 5, 10.0)]
    assert analysis["latency_ms"]["p95"] == 200.0 and analysis["latency_ms"]["mean"] == 200.0
    assert analysis["slow"] is False
    assert analysis["versions"] == [
        {"version": 2, "runs": 50, "successes": 45, "success_rate": 0.9, "current": True},
        {"version": 1, "runs": 100, "successes": 20, "success_rate": 0.2, "current": False},
    ]


def test_the_case_is_judged_on_its_current_version(make_case):
    """Pooled, 65 of 150 runs (43 %) would set `warning`; v2 alone succeeds 90 % of the time."""
    case = _case_at_v2(make_case)

    case_analysis_record(case_id=case.pk)

    case = Case.objects.get(pk=case.pk)
    assert case.status == CaseStatus.ACTIVE
    assert (case.success_rate, case.run_count) == (0.9, 50)


def test_a_new_version_without_runs_has_no_figures_yet(make_case):
    case = make_case()
    add_logs(case, count=100, success=False, now=timezone.now(), error_type="TimeoutError")
    case_analysis_record(case_id=case.pk)
    case = case_services.case_update(case=case, actor="editor", plan=V2_PLAN)

    analysis = case_analysis_record(case_id=case.pk).analysis

    assert (analysis["total_executions"], analysis["success_rate"], analysis["confidence"]) == (0, None, "insufficient")
    assert analysis["versions"][0] == {"version": 2, "runs": 0, "successes": 0, "success_rate": None, "current": True}
    case = Case.objects.get(pk=case.pk)
    # The rate of v1's plan no longer describes the plan served.
    assert (case.success_rate, case.run_count) == (None, 0)


def test_an_experiments_candidate_runs_are_left_to_the_experiment(make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    now = timezone.now()
    add_logs(case, count=108, success=True, now=now)
    add_logs(case, count=12, success=False, now=now, error_type="TimeoutError")
    add_logs(case, count=100, success=False, now=now, version=experiment.candidate_version, error_type="KeyError")

    record = case_analysis_record(case_id=case.pk)

    analysis = record.analysis
    assert (analysis["case_version"], analysis["total_executions"], analysis["success_rate"]) == (1, 120, 0.9)
    assert [e["error_type"] for e in analysis["common_errors"]] == ["TimeoutError"]
    assert [(v["version"], v["runs"], v["current"]) for v in analysis["versions"]] == [(2, 100, False), (1, 120, True)]
    assert Case.objects.get(pk=case.pk).status == CaseStatus.ACTIVE


def test_at_most_five_versions_are_compared_the_current_always_among_them(make_case):
    case = make_case()
    now = timezone.now()
    for version in range(1, 8):
        add_logs(case, count=version, success=True, now=now, version=version)
    for version in range(2, 8):
        case = case_services.case_update(case=case, actor="editor", plan=[{"agent": "a", "action": f"v{version}"}])
    case = case_services.case_rollback(case=case, to_version=1, actor="editor")  # v8, no runs yet

    versions = analyze_case(case_id=case.pk)["versions"]

    assert [v["version"] for v in versions] == [8, 7, 6, 5, 4]
    assert versions[0]["current"] and versions[0]["runs"] == 0


def test_the_api_and_the_admin_page_show_the_comparison(make_case, api, admin_client_logged_in):
    case = _case_at_v2(make_case)

    response = api.post("/api/reflection/analyze", {"case_id": str(case.pk)}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["case_version"] == 2
    assert [v["version"] for v in response.json()["versions"]] == [2, 1]
    stored = api.get(f"/api/reflection/cases/{case.pk}/analysis")
    assert stored.json()["analysis"]["versions"][1] == {
        "version": 1, "runs": 100, "successes": 20, "success_rate": 0.2, "current": False}
    html = admin_client_logged_in.get(reverse("admin:reflection_case_analysis_page", args=[case.pk])).content.decode()
    table = html[html.index("Runs by version"):]
    assert "v2 (current)" in table and "45 of 50" in table and "90 %" in table
    assert "v1" in table and "20 of 100" in table and "20 %" in table
