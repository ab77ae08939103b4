"""Deny by default: every DRF view under /api/ names the scopes of the methods it serves and
checks them (`RequiredScopes`); a view that names none is refused to every key."""
from __future__ import annotations

import pytest
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from casebank.access.permissions import RequiredScopes, scopes_for
from casebank.access.scopes import ALL_SCOPES
from tests.casebank.access.api_routes import api_routes

# Views that do not check scopes through RequiredScopes, and why.
EXCEPTIONS = {
    # The API description: no data, open to any key or a staff session (config.api_docs).
    "api/schema/": "any key or staff session reads the description",
    "api/docs/": "any key or staff session reads the description",
    # An async Django view (not DRF): it checks Scope.SESSIONS itself (test_scopes_required.py).
    "api/sessions/<uuid:session_id>/stream": "checks the sessions scope itself",
}


def test_the_walk_finds_the_views():
    routes = {item.route for item in api_routes()}
    assert {"api/cases/", "api/cases/<uuid:case_id>/rollback/", "api/logs/", "api/suggestions/"} <= routes


def test_every_api_view_declares_and_checks_its_scopes():
    problems = []
    for item in api_routes():
        if item.route in EXCEPTIONS:
            continue
        view = item.view_class
        if view is None:
            problems.append(f"{item.route}: not a DRF view; list it in EXCEPTIONS with a reason")
            continue
        if not any(isinstance(permission, RequiredScopes) for permission in view().get_permissions()):
            problems.append(f"{item.route}: {view.__name__} does not check RequiredScopes")
        for method in item.methods():
            needed = scopes_for(view, method)
            if needed is None:
                problems.append(f"{item.route}: {view.__name__} declares no scope for {method}")
            elif not set(needed) <= set(ALL_SCOPES):
                problems.append(f"{item.route}: {method} names unknown scopes {needed}")
    assert problems == []


class Undeclared(APIView):
    def get(self, request):
        return Response({"ok": True})


class PartlyDeclared(APIView):
    required_scopes = {"GET": ()}

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


@pytest.mark.django_db
def test_a_view_without_scopes_is_refused_to_every_key(api_key):
    key, _ = api_key  # every scope
    factory = APIRequestFactory()
    request = factory.get("/x")
    force_authenticate(request, user=key.user, token=key)
    response = Undeclared.as_view()(request)
    assert response.status_code == 403
    assert "declares no API-key scope" in str(response.data["detail"])
    partly = PartlyDeclared.as_view()
    for method, expected in (("get", 200), ("post", 403)):
        request = getattr(factory, method)("/x")
        force_authenticate(request, user=key.user, token=key)
        assert partly(request).status_code == expected, method
