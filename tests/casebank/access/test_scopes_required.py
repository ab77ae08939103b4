"""Each endpoint refuses a key without its scope: a 403 that names the scope (issue #17: a plain
key edited plans, rolled back and changed status; now those need `cases:write`).

The key's user is a superuser, so the refusal can only come from the key's scopes."""
from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from rest_framework.test import APIClient

from casebank.access import services as access_services
from casebank.access.permissions import scopes_for
from casebank.access.scopes import ALL_SCOPES, DEFAULT_SCOPES, Scope
from tests.casebank.access.api_routes import api_routes

pytestmark = pytest.mark.django_db

# What each route needs, written out so that lowering one is a failing test, not a quiet edit.
# Routes added later are held to what they declare (test_every_route_refuses_a_key_without_its_scope).
EXPECTED = {
    ("api/cases/", "GET"): Scope.CASES_READ,
    ("api/cases/", "POST"): Scope.CASES_WRITE,
    ("api/cases/search/", "POST"): Scope.CASES_READ,
    ("api/cases/<uuid:case_id>/", "GET"): Scope.CASES_READ,
    ("api/cases/<uuid:case_id>/", "PUT"): Scope.CASES_WRITE,
    ("api/cases/<uuid:case_id>/", "PATCH"): Scope.CASES_WRITE,  # the plan edit
    ("api/cases/<uuid:case_id>/status/", "PATCH"): Scope.CASES_WRITE,
    ("api/cases/<uuid:case_id>/versions/", "GET"): Scope.CASES_READ,
    ("api/cases/<uuid:case_id>/plan/", "GET"): Scope.CASES_READ,
    ("api/cases/<uuid:case_id>/rollback/", "POST"): Scope.CASES_WRITE,
    ("api/cases/<uuid:case_id>/approve/", "POST"): Scope.REVIEW,
    ("api/cases/<uuid:case_id>/reject/", "POST"): Scope.REVIEW,
    ("api/consolidation/run", "POST"): Scope.CASES_WRITE,
    ("api/consolidation/restore/<uuid:case_id>", "POST"): Scope.CASES_WRITE,
    ("api/logs/", "POST"): Scope.LOGS_WRITE,
    ("api/logs/", "GET"): Scope.CASES_READ,
    ("api/reflection/analyze", "POST"): Scope.REFLECTION,
    ("api/reflection/cases/<uuid:case_id>/analysis", "GET"): Scope.REFLECTION,
    ("api/reflection/batch", "POST"): Scope.REFLECTION,
    ("api/reflection/runs/<int:run_id>", "GET"): Scope.REFLECTION,
    ("api/suggestions/", "GET"): Scope.REFLECTION,
    ("api/suggestions/generate", "POST"): Scope.REFLECTION,
    ("api/suggestions/<int:suggestion_id>", "GET"): Scope.REFLECTION,
    ("api/suggestions/<int:suggestion_id>/approve", "POST"): Scope.REVIEW,
    ("api/suggestions/<int:suggestion_id>/reject", "POST"): Scope.REVIEW,
    ("api/suggestions/<int:suggestion_id>/rollback", "POST"): Scope.REVIEW,
    ("api/sessions/", "GET"): Scope.SESSIONS,
    ("api/sessions/", "POST"): Scope.SESSIONS,
    ("api/sessions/<uuid:session_id>", "GET"): Scope.SESSIONS,
    ("api/agents/data-analysis/", "POST"): Scope.SESSIONS,
}

OPERATIONS = [
    (item, method) for item in api_routes() if item.view_class is not None for method in item.methods()
    if scopes_for(item.view_class, method)
]


def _client(superuser, scopes) -> APIClient:
    _, plain = access_services.api_key_create(name=f"k-{uuid.uuid4().hex[:8]}", user=superuser, scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def test_the_declared_scopes_are_the_expected_ones():
    declared = {(item.route, method): scopes_for(item.view_class, method) for item, method in OPERATIONS}
    for (route, method), scope in EXPECTED.items():
        assert declared.get((route, method)) == (scope,), (route, method)


@pytest.mark.parametrize(("item", "method"), OPERATIONS, ids=[f"{m} {i.route}" for i, m in OPERATIONS])
def test_every_route_refuses_a_key_without_its_scope(superuser, item, method):
    for scope in scopes_for(item.view_class, method) or ():
        client = _client(superuser, [other for other in ALL_SCOPES if other != scope])
        response = getattr(client, method.lower())(item.path, {}, format="json")
        assert response.status_code == 403, (method, item.path, response.content[:200])
        assert response.json()["detail"] == f"This API key lacks the scope '{scope}'."


@pytest.mark.parametrize(("item", "method"), OPERATIONS[:], ids=[f"{m} {i.route}" for i, m in OPERATIONS])
def test_a_key_with_the_scope_gets_past_the_scope_check(superuser, item, method):
    client = _client(superuser, list(scopes_for(item.view_class, method) or ()))
    response = getattr(client, method.lower())(item.path, {}, format="json")
    assert "lacks the scope" not in response.content.decode(), (method, item.path)
    assert response.status_code < 500


@pytest.mark.parametrize(("method", "path", "body"), [
    ("patch", "/api/cases/{id}/", {"plan": [{"agent": "data_analysis", "action": "DROP everything"}]}),
    ("post", "/api/cases/{id}/rollback/", {"version": 1}),
    ("patch", "/api/cases/{id}/status/", {"status": "deprecated"}),
    ("post", "/api/cases/", {"title": "t", "query": "q", "plan": [{"agent": "data_analysis"}]}),
])
def test_a_default_agent_key_cannot_edit_roll_back_or_change_status(api_client, make_case, method, path, body):
    case = make_case()
    agent = api_client()  # DEFAULT_SCOPES, what `create_api_key NAME` makes
    response = getattr(agent, method)(path.format(id=case.pk), body, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "This API key lacks the scope 'cases:write'."
    case.refresh_from_db()
    assert case.version == 1 and case.status == "active"


def test_a_default_agent_key_ingests_reads_cases_and_starts_sessions(api_client, make_case, monkeypatch):
    monkeypatch.setattr("core.task_queue.async_task", lambda *args, **kwargs: None)
    case = make_case()
    agent = api_client()
    assert set(agent.api_key.scopes) == set(DEFAULT_SCOPES)
    assert agent.post("/api/logs/", {"case_id": str(case.pk), "success": True, "execution_time_ms": 5},
                      format="json").status_code == 201
    assert agent.get(f"/api/cases/{case.pk}/").status_code == 200
    assert agent.post("/api/cases/search/", {"query": "revenue"}, format="json").status_code == 200
    assert agent.post("/api/sessions/", {"query": "How many orders?"}, format="json").status_code == 202
    assert agent.get("/api/suggestions/").json()["detail"] == "This API key lacks the scope 'reflection'."


@pytest.mark.django_db(transaction=True)
def test_the_event_stream_refuses_a_key_without_the_sessions_scope(superuser):
    _, plain = access_services.api_key_create(
        name="no-sessions", user=superuser, scopes=[s for s in ALL_SCOPES if s != Scope.SESSIONS]
    )
    response = async_to_sync(AsyncClient().get)(
        f"/api/sessions/{uuid.uuid4()}/stream", headers={"Authorization": f"Token {plain}"},
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "This API key lacks the scope 'sessions'."
