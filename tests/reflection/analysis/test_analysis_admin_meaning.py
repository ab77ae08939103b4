"""Issue #19: reflection's admin pages say what their figures are and link what a run did."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from reflection.models import CaseAnalysis, ReflectionRun, ReflectionRunStatus
from tests.reflection.factories import add_logs
from tests.reflection.suggestion_helpers import make_suggestion

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_with_work(make_case):
    started = timezone.now()
    weak, fine = make_case(title="Weak one"), make_case(title="Fine one")
    run = ReflectionRun.objects.create(status=ReflectionRunStatus.COMPLETED, started_at=started, finished_at=started,
                                       cases_analysed=2)
    for case, rate, slow in ((weak, 0.3, True), (fine, 0.95, False)):
        CaseAnalysis.objects.create(case=case, run=run, window_days=30, total_executions=200,
                                    successes=int(200 * rate), success_rate=rate, slow=slow, confidence="ok",
                                    latency_p95_ms=2500 if slow else 300, result={})
    suggestion = make_suggestion(weak)
    return run, weak, fine, suggestion


def test_it_shows_healthy_latency_as_a_neutral_no_not_a_red_cross(admin_client_logged_in, run_with_work):
    html = admin_client_logged_in.get(reverse("admin:reflection_caseanalysis_changelist")).content.decode()
    assert "icon-no.svg" not in html and "icon-yes.svg" not in html
    assert "Slow (p95 &gt; 2 s)" in html
    assert html.count(">slow</span>") == 1 and html.count(">no</span>") == 1


def test_it_lists_the_cases_a_run_analysed_and_the_suggestions_made(admin_client_logged_in, run_with_work):
    run, weak, fine, suggestion = run_with_work
    html = admin_client_logged_in.get(reverse("admin:reflection_reflectionrun_change", args=[run.pk])).content.decode()
    assert reverse("admin:reflection_case_analysis_page", args=[weak.pk]) in html
    assert reverse("admin:reflection_case_analysis_page", args=[fine.pk]) in html
    assert reverse("admin:reflection_suggestion_change", args=[suggestion.pk]) in html
    assert f"?case__id__exact={weak.pk}" in html  # the case's logs
    # Weakest first.
    assert html.index("Weak one") < html.index("Fine one")


def test_its_read_only_pages_offer_no_delete(admin_client_logged_in, run_with_work):
    run = run_with_work[0]
    analysis = CaseAnalysis.objects.first()
    for url in (reverse("admin:reflection_reflectionrun_change", args=[run.pk]),
                reverse("admin:reflection_caseanalysis_change", args=[analysis.pk])):
        html = admin_client_logged_in.get(url).content.decode()
        assert 'class="deletelink"' not in html, url


def test_the_log_lists_error_type_filter_says_its_counts_cover_7_days(admin_client_logged_in, make_case):
    add_logs(make_case(), count=2, success=False, error_type="TimeoutError", now=timezone.now())
    html = admin_client_logged_in.get(reverse("admin:reflection_executionlog_changelist")).content.decode()
    assert "error type (counts: last 7 days)" in html


def test_the_case_page_says_what_retrieved_and_executions_count(admin_client_logged_in, run_with_work):
    _, weak, fine, suggestion = run_with_work
    html = admin_client_logged_in.get(reverse("admin:reflection_case_analysis_page", args=[weak.pk])).content.decode()
    assert "used 0 times" not in html and "retrieved 0 times (ever)" in html
    for link in (reverse("admin:casebank_case_change", args=[weak.pk]),
                 f"{reverse('admin:reflection_executionlog_changelist')}?case__id__exact={weak.pk}"):
        assert link in html
    suggestions = f"{reverse('admin:reflection_suggestion_changelist')}?case__id__exact={weak.pk}"
    assert suggestions in html
    listed = admin_client_logged_in.get(suggestions)
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1


def test_the_analysis_page_says_why_the_case_has_its_status(admin_client_logged_in, make_case):
    from casebank.cases import services as case_services

    case = make_case(title="Dropping one")
    case_services.case_set_status(case=case, status="warning", actor="reflection",
                                  reason="success rate dropped from 91% to 23% in the last 24 h")
    html = admin_client_logged_in.get(reverse("admin:reflection_case_analysis_page", args=[case.pk])).content.decode()
    assert "<strong>warning</strong>" in html
    assert "(success rate dropped from 91% to 23% in the last 24 h)" in html
    # A status changed back since is not explained by the old reason.
    case_services.case_set_status(case=case, status="active", actor="tester", reason="")
    html = admin_client_logged_in.get(reverse("admin:reflection_case_analysis_page", args=[case.pk])).content.decode()
    assert "dropped from 91%" not in html
