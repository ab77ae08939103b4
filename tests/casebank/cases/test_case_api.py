from __future__ import annotations

import uuid

import pytest

from casebank.models import Case, CaseStatusChange, CaseVersion

pytestmark = pytest.mark.django_db


def test_it_requires_a_key(anonymous_api):
    response = anonymous_api.get("/api/cases/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_it_rejects_an_unknown_key(anonymous_api):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token cl_not-a-real-key")
    response = anonymous_api.get("/api/cases/")
    assert response.status_code == 401
    assert "Invalid" in response.json()["detail"]


def test_it_creates_a_case_at_version_one(api):
    response = api.post(
        "/api/cases/",
        {"title": "Churn drivers", "query": "Why did customers churn last month?", "plan": "Segment churned users"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == 1
    assert body["status"] == "active"
    assert body["updated_by"] == "api:test-client"
    case = Case.objects.get(pk=body["id"])
    assert case.embedding is not None and len(case.embedding) == 384
    assert list(CaseVersion.objects.filter(case=case).values_list("version", "reason")) == [(1, "manual")]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"query": "q", "plan": "p"}, "title"),
        ({"title": "t", "plan": "p"}, "query"),
        ({"title": "t", "query": "q"}, "plan"),
        ({"title": "t", "query": "q", "plan": []}, "plan"),
        ({"title": "t", "query": "q", "plan": [{"action": "no agent"}]}, "plan"),
        ({"title": "t", "query": "q", "plan": "p", "tags": "notalist"}, "tags"),
        ({"title": "t", "query": "q", "plan": "p", "category": "bad//path"}, "category"),
        ({"title": "x" * 201, "query": "q", "plan": "p"}, "title"),
    ],
)
def test_it_rejects_bad_cases_with_a_field_error(api, payload, field):
    response = api.post("/api/cases/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Case.objects.count() == 0


def test_it_rejects_malformed_json(api):
    response = api.post("/api/cases/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_it_bumps_the_version_on_content_edits_only(api, make_case):
    case = make_case()
    response = api.patch(f"/api/cases/{case.id}/", {"tags": ["new"]}, format="json")
    assert response.json()["version"] == 1
    response = api.patch(f"/api/cases/{case.id}/", {"plan": "A better plan"}, format="json")
    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert CaseVersion.objects.filter(case=case).count() == 2


def test_it_refuses_an_edit_at_a_stale_version(api, make_case):
    case = make_case()
    api.patch(f"/api/cases/{case.id}/", {"plan": "v2"}, format="json")
    response = api.patch(f"/api/cases/{case.id}/", {"plan": "v3", "version": 1}, format="json")
    assert response.status_code == 409
    assert Case.objects.get(pk=case.pk).plan == "v2"


def test_it_replaces_a_case_with_put(api, make_case):
    case = make_case()
    response = api.put(f"/api/cases/{case.id}/", {"title": "T2", "query": "Q2", "plan": "P2"}, format="json")
    assert response.status_code == 200
    assert response.json()["title"] == "T2" and response.json()["version"] == 2
    response = api.put(f"/api/cases/{case.id}/", {"title": "T3"}, format="json")
    assert response.status_code == 400


def test_it_answers_404_for_an_unknown_case(api):
    assert api.get(f"/api/cases/{uuid.uuid4()}/").status_code == 404
    assert api.patch(f"/api/cases/{uuid.uuid4()}/status/", {"status": "deprecated"}, format="json").status_code == 404


def test_it_changes_status_with_an_audit_row(api, make_case):
    case = make_case()
    response = api.patch(f"/api/cases/{case.id}/status/", {"status": "deprecated", "reason": "superseded"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "deprecated"
    change = CaseStatusChange.objects.get(case=case)
    assert (change.from_status, change.to_status, change.reason, change.actor) == (
        "active", "deprecated", "superseded", "api:test-client"
    )


def test_it_refuses_an_unknown_or_disallowed_status(api, make_case):
    case = make_case()
    assert api.patch(f"/api/cases/{case.id}/status/", {"status": "gone"}, format="json").status_code == 400
    api.patch(f"/api/cases/{case.id}/status/", {"status": "archived"}, format="json")
    response = api.patch(f"/api/cases/{case.id}/status/", {"status": "deprecated"}, format="json")
    assert response.status_code == 409
    assert CaseStatusChange.objects.filter(case=case).count() == 1


def test_it_lists_versions_and_rolls_back_as_a_new_version(api, make_case):
    case = make_case(plan="first plan")
    api.patch(f"/api/cases/{case.id}/", {"plan": "second plan"}, format="json")
    response = api.post(f"/api/cases/{case.id}/rollback/", {"version": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["version"] == 3
    assert response.json()["plan"] == "first plan"
    versions = api.get(f"/api/cases/{case.id}/versions/").json()
    assert [(v["version"], v["reason"]) for v in versions] == [(3, "rollback to v1"), (2, "manual"), (1, "manual")]


def test_it_refuses_a_rollback_to_a_missing_version(api, make_case):
    case = make_case()
    assert api.post(f"/api/cases/{case.id}/rollback/", {"version": 9}, format="json").status_code == 404
    assert api.post(f"/api/cases/{case.id}/rollback/", {"version": "x"}, format="json").status_code == 400


def test_it_filters_and_sorts_the_list(api, make_case):
    popular = make_case(title="Popular", category="analytics")
    make_case(title="Other", category="support/tickets")
    Case.objects.filter(pk=popular.pk).update(usage_count=50)
    body = api.get("/api/cases/?category=analytics&sort=usage").json()
    assert [c["title"] for c in body["results"]] == ["Popular"]
    body = api.get("/api/cases/?sort=usage").json()
    assert body["results"][0]["title"] == "Popular"
    assert api.get("/api/cases/?status=bogus").status_code == 400
    assert api.get("/api/cases/?sort=bogus").status_code == 400
