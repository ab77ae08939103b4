from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages

from casebank.cases import services as case_services
from casebank.models import CaseVersion
from reflection.models import DecisionAction, Suggestion, SuggestionDecision, SuggestionStatus
from tests.reflection.suggestion_helpers import PLAN, REVISED, make_suggestion

pytestmark = pytest.mark.django_db

QUEUE = "/admin/reflection/pendingsuggestion/"






@pytest.fixture
def suggestion(make_case):
    return make_suggestion(make_case(plan=PLAN))


def _post(client, url, suggestion, action, **extra):
    return client.post(url, {"action": action, "_selected_action": [suggestion.pk], **extra})


def test_it_lists_only_pending_suggestions_in_the_queue(client, reviewer, suggestion, make_case):
    other = make_suggestion(make_case(plan=PLAN, title="Done already"), status=SuggestionStatus.REJECTED)
    client.force_login(reviewer)
    page = client.get(QUEUE).content.decode()
    assert f"/{suggestion.pk}/change/" in page and f"/{other.pk}/change/" not in page
    assert "TimeoutError (61.5%)" in page


def test_it_shows_the_evidence_and_a_diff_of_the_plans(client, reviewer, suggestion):
    client.force_login(reviewer)
    page = client.get(f"{QUEUE}{suggestion.pk}/change/").content.decode()
    assert "Current plan (v1)" in page and "Proposed plan" in page
    assert 'class="diff_chg"' in page or 'class="diff_add"' in page
    assert "with a 30 s statement timeout" in page
    assert "query 4711 timed out after 30 s" in page and "Error groups" in page
    assert "Approve…" in page


def test_it_approves_as_an_experiment_with_audit(client, reviewer, suggestion):
    client.force_login(reviewer)
    confirm = _post(client, QUEUE, suggestion, "approve_selected")
    assert confirm.status_code == 200 and "Yes, approve" in confirm.content.decode()
    assert "starts an <strong>experiment</strong>" in confirm.content.decode()
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.PENDING

    response = _post(client, QUEUE, suggestion, "approve_selected", apply="1", note="Looks right")
    assert response.status_code == 302
    suggestion.refresh_from_db()
    case = suggestion.case
    case.refresh_from_db()
    assert (suggestion.status, suggestion.reviewed_by, suggestion.review_note) == (
        SuggestionStatus.APPROVED, reviewer, "Looks right")
    assert (case.version, case.plan) == (1, PLAN)  # served to the canary only
    snapshot = CaseVersion.objects.get(case=case, version=2)
    assert (snapshot.plan, snapshot.reason, snapshot.author) == (REVISED, f"suggestion #{suggestion.pk} (candidate)", "reviewer")
    decision = SuggestionDecision.objects.get(suggestion=suggestion)
    assert (decision.action, decision.from_status, decision.to_status, decision.actor, decision.case_version) == (
        DecisionAction.APPROVE, "pending", "approved", reviewer, 1)
    assert LogEntry.objects.filter(object_id=str(suggestion.pk), user=reviewer,
                                   change_message__contains="serves v2 to 20% of traffic").exists()


def test_it_approves_as_a_new_case_version_with_experiments_off(client, reviewer, suggestion, experiments_off):
    client.force_login(reviewer)
    response = _post(client, QUEUE, suggestion, "approve_selected", apply="1", note="Looks right")
    assert response.status_code == 302
    suggestion.refresh_from_db()
    case = suggestion.case
    case.refresh_from_db()
    assert (suggestion.status, suggestion.applied_version) == (SuggestionStatus.APPROVED, 2)
    assert (case.version, case.plan) == (2, REVISED)
    assert CaseVersion.objects.get(case=case, version=2).reason == f"suggestion #{suggestion.pk}"


def test_it_refuses_the_actions_without_the_permission(client, onlooker, suggestion):
    client.force_login(onlooker)
    assert "approve_selected" not in client.get(QUEUE).content.decode()
    for action in ("approve_selected", "reject_selected"):
        _post(client, QUEUE, suggestion, action, apply="1", note="sneaky")
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.PENDING and suggestion.case.version == 1
    assert not SuggestionDecision.objects.exists()


def test_it_rejects_only_with_a_note(client, reviewer, suggestion):
    client.force_login(reviewer)
    page = _post(client, QUEUE, suggestion, "reject_selected", apply="1", note="  ")
    assert "A note is required" in page.content.decode()
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.PENDING

    _post(client, QUEUE, suggestion, "reject_selected", apply="1", note="Timeouts come from the warehouse, not the plan")
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.review_note) == (SuggestionStatus.REJECTED, "Timeouts come from the warehouse, not the plan")
    assert suggestion.case.version == 1
    decision = SuggestionDecision.objects.get()
    assert (decision.action, decision.actor) == (DecisionAction.REJECT, reviewer)


def test_it_marks_a_suggestion_stale_when_the_case_changed(client, reviewer, suggestion):
    manual = [{"agent": "data_analysis", "action": "Edited by hand"}]
    case_services.case_update(case=suggestion.case, actor="editor", plan=manual)
    client.force_login(reviewer)
    response = _post(client, QUEUE, suggestion, "approve_selected", apply="1")
    suggestion.refresh_from_db()
    case = suggestion.case
    case.refresh_from_db()
    assert suggestion.status == SuggestionStatus.STALE
    assert "version 2, not 1" in suggestion.stale_reason
    assert (case.version, case.plan) == (2, manual), "a stale suggestion never overwrites the newer plan"
    assert SuggestionDecision.objects.get().action == DecisionAction.STALE
    assert any("Stale" in str(m) for m in get_messages(response.wsgi_request))


def test_it_rolls_back_a_regression_after_a_confirmation_with_a_note(client, reviewer, suggestion, experiments_off):
    from tests.reflection.suggestion_helpers import add_logs

    client.force_login(reviewer)
    _post(client, QUEUE, suggestion, "approve_selected", apply="1")
    case = suggestion.case
    add_logs(case, version=1, successes=80, failures=20)
    add_logs(case, version=2, successes=30, failures=70)
    _post(client, "/admin/reflection/suggestion/", suggestion, "verify_selected")
    suggestion.refresh_from_db()
    assert suggestion.verification == "regressed"
    page = client.get(f"/admin/reflection/suggestion/{suggestion.pk}/change/").content.decode()
    assert "Roll back…" in page

    confirm = _post(client, "/admin/reflection/suggestion/", suggestion, "rollback_selected")
    assert confirm.status_code == 200 and "Yes, roll back" in confirm.content.decode()
    no_note = _post(client, "/admin/reflection/suggestion/", suggestion, "rollback_selected", apply="1", note=" ")
    assert "A note is required to roll back" in no_note.content.decode()
    suggestion.refresh_from_db()
    assert suggestion.rolled_back_version is None

    _post(client, "/admin/reflection/suggestion/", suggestion, "rollback_selected", apply="1", note="worse")
    suggestion.refresh_from_db()
    case.refresh_from_db()
    assert (case.version, case.plan, suggestion.rolled_back_version) == (3, PLAN, 3)
    assert suggestion.status == SuggestionStatus.ROLLED_BACK
    assert CaseVersion.objects.get(case=case, version=3).reason == "rollback to v1"
    decision = SuggestionDecision.objects.get(action=DecisionAction.ROLLBACK, actor=reviewer)
    assert decision.note == "worse"
    page = client.get(f"/admin/reflection/suggestion/{suggestion.pk}/change/").content.decode()
    assert "Rolled back" in page and "Approved and applied" not in page


@pytest.mark.parametrize("url", [QUEUE, "/admin/reflection/suggestion/"])
def test_it_shows_the_decision_buttons_only_to_those_who_may_decide(client, reviewer, onlooker, suggestion, url):
    client.force_login(onlooker)
    page = client.get(f"{url}{suggestion.pk}/change/")
    assert page.status_code == 200 and "Proposed plan" in page.content.decode()
    assert "Approve…" not in page.content.decode() and "Reject…" not in page.content.decode()

    client.force_login(reviewer)
    page = client.get(f"{url}{suggestion.pk}/change/").content.decode()
    assert "Approve…" in page and "Reject…" in page


def test_it_redirects_a_malformed_suggestion_id_like_django_does(client, reviewer):
    client.force_login(reviewer)
    for url in (QUEUE, "/admin/reflection/suggestion/"):
        response = client.get(f"{url}abc/change/", follow=True)
        assert response.status_code == 200 and "doesn’t exist" in response.content.decode()
