from __future__ import annotations

import pytest

from casebank.cases import services as case_services
from reflection.models import SuggestionDecision, SuggestionStatus
from tests.conftest import grant
from tests.reflection.suggestion_helpers import PLAN, REVISED, add_logs, make_suggestion

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer_api(api, api_key):
    grant(api_key[0].user, "approve_suggestion")
    return api


@pytest.fixture
def suggestion(make_case):
    return make_suggestion(make_case(plan=PLAN))


def test_it_lists_suggestions_filtered_by_case_and_status(reviewer_api, suggestion, make_case):
    other = make_suggestion(make_case(plan=PLAN, title="Other"), status=SuggestionStatus.REJECTED)
    body = reviewer_api.get("/api/suggestions/", {"status": "pending"}).json()
    assert [s["id"] for s in body["results"]] == [suggestion.pk]
    body = reviewer_api.get("/api/suggestions/", {"case": str(other.case_id)}).json()
    assert [s["id"] for s in body["results"]] == [other.pk]
    row = reviewer_api.get("/api/suggestions/").json()["results"][-1]
    assert {"id", "case_id", "base_version", "status", "source", "rationale", "changes", "revised_plan",
            "expected_effect", "confidence", "created_at", "reviewed_by", "reviewed_at", "review_note",
            "verification"} <= set(row)


@pytest.mark.parametrize("query", [{"case": "not-a-uuid"}, {"status": "maybe"}])
def test_it_rejects_bad_filters_with_400(reviewer_api, query):
    response = reviewer_api.get("/api/suggestions/", query)
    assert response.status_code == 400
    assert set(response.json()) == {"detail", "errors"}


def test_it_forbids_everything_without_the_permission(api, suggestion):
    assert api.get("/api/suggestions/").status_code == 403
    assert api.post(f"/api/suggestions/{suggestion.pk}/approve", {}, format="json").status_code == 403
    response = api.post(f"/api/suggestions/{suggestion.pk}/reject", {"note": "no"}, format="json")
    assert response.status_code == 403 and "approve_suggestion" in response.json()["detail"]
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.PENDING


def test_it_needs_authentication(anonymous_api, suggestion):
    assert anonymous_api.get("/api/suggestions/").status_code == 401


def test_it_approves_through_the_api_as_an_experiment(reviewer_api, api_key, suggestion):
    response = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/approve", {"note": "ship it"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["applied_version"], body["reviewed_by"], body["review_note"]) == (
        "approved", None, api_key[0].user.username, "ship it")
    assert body["verification"]["status"] == "pending"
    experiment = body["experiment"]
    assert (experiment["status"], experiment["base_version"], experiment["candidate_version"],
            experiment["candidate_share"]) == ("running", 1, 2, 0.2)
    suggestion.case.refresh_from_db()
    assert (suggestion.case.version, suggestion.case.plan) == (1, PLAN)  # the candidate is not current yet
    again = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/approve", {}, format="json")
    assert again.status_code == 409


def test_it_rolls_back_an_experiment_with_a_note(reviewer_api, suggestion):
    reviewer_api.post(f"/api/suggestions/{suggestion.pk}/approve", {}, format="json")
    refused = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/rollback", {}, format="json")
    assert refused.status_code == 400 and "note" in refused.json()["errors"]
    response = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/rollback", {"note": "too risky"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["experiment"]["status"], body["rolled_back_version"]) == ("rolled_back", "rolled_back", 1)


def test_it_approves_through_the_api_and_applies_with_experiments_off(reviewer_api, api_key, suggestion, experiments_off):
    response = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/approve", {"note": "ship it"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["applied_version"], body["experiment"]) == ("approved", 2, None)
    suggestion.case.refresh_from_db()
    assert suggestion.case.plan == REVISED


def test_it_answers_409_and_marks_stale_when_the_case_changed(reviewer_api, suggestion):
    case_services.case_update(case=suggestion.case, actor="editor", plan=[{"agent": "x", "action": "manual"}])
    response = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/approve", {}, format="json")
    assert response.status_code == 409 and "stale" in response.json()["detail"]
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.STALE
    assert SuggestionDecision.objects.get().action == "stale"


def test_it_rejects_with_a_required_note(reviewer_api, suggestion):
    assert reviewer_api.post(f"/api/suggestions/{suggestion.pk}/reject", {}, format="json").status_code == 400
    response = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/reject", {"note": "wrong cause"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "rejected"


def test_it_answers_404_for_unknown_ids(reviewer_api):
    assert reviewer_api.post("/api/suggestions/999999/approve", {}, format="json").status_code == 404
    assert reviewer_api.get("/api/suggestions/99999999999999999999999").status_code == 404


def test_it_shows_verification_and_rolls_back_a_regression(reviewer_api, suggestion, experiments_off):
    from reflection.suggestions.services import suggestion_verify

    reviewer_api.post(f"/api/suggestions/{suggestion.pk}/approve", {}, format="json")
    add_logs(suggestion.case, version=1, successes=90, failures=10)
    add_logs(suggestion.case, version=2, successes=40, failures=60)
    suggestion.refresh_from_db()
    suggestion_verify(suggestion=suggestion)
    body = reviewer_api.get(f"/api/suggestions/{suggestion.pk}").json()
    assert body["verification"]["status"] == "regressed"
    assert (body["verification"]["before"]["runs"], body["verification"]["after"]["successes"]) == (100, 40)
    assert "evidence" in body
    response = reviewer_api.post(f"/api/suggestions/{suggestion.pk}/rollback", {}, format="json")
    assert response.status_code == 200 and response.json()["rolled_back_version"] == 3
    suggestion.case.refresh_from_db()
    assert suggestion.case.plan == PLAN


def test_it_generates_on_demand(reviewer_api, make_case, settings):
    settings.OPENAI_API_KEY = ""
    case = make_case(plan=PLAN)
    add_logs(case, successes=20, failures=100)
    response = reviewer_api.post("/api/suggestions/generate", {"case_id": str(case.id)}, format="json")
    assert response.status_code == 201 and response.json()["source"] == "rules"
    again = reviewer_api.post("/api/suggestions/generate", {"case_id": str(case.id)}, format="json").json()
    assert again == {"created": False, "detail": "A suggestion for version 1 is already pending."}
    assert reviewer_api.post("/api/suggestions/generate", {"case_id": "nope"}, format="json").status_code == 400
