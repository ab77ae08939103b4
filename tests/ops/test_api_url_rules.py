"""One API surface: every /api/ route answers its errors as `{"detail", "errors"}` JSON and takes
a path with or without the trailing slash (issue #17: unknown paths and malformed ids were
Django's HTML 404, `/api/cases` a redirect and `/api/reflection/analyze/` a 404).

The routes come from the URL configuration itself, so a route added later is walked too.
"""
from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from casebank.access import services as access_services
from casebank.access.scopes import ALL_SCOPES

pytestmark = pytest.mark.django_db

GOOD = {"uuid": "00000000-0000-4000-8000-000000000000", "int": "987654"}
MALFORMED = {"uuid": "not-a-uuid", "int": "abc"}
METHODS = ("get", "post", "put", "patch", "delete")
CONVERTER = re.compile(r"<(?:(\w+):)?\w+>")


def _api_routes(patterns=None, prefix: str = "") -> list[str]:
    routes = []
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/"):
            routes.append(route)
    return sorted(set(routes))


def _concrete(route: str, values: dict[str, str]) -> str:
    return "/" + CONVERTER.sub(lambda match: values[match.group(1) or "str"], route)


def _twin(path: str) -> str:
    return path[:-1] if path.endswith("/") else f"{path}/"


@pytest.fixture
def root_api(superuser) -> APIClient:
    _, plain = access_services.api_key_create(name="root-client", user=superuser, scopes=ALL_SCOPES)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def _assert_json_error(response, where: str) -> None:
    assert response["Content-Type"].startswith("application/json"), (where, response.status_code, response.content[:200])
    assert set(response.json()) >= {"detail", "errors"}, where


def test_the_walk_finds_every_api_route():
    routes = _api_routes()
    for expected in ["api/cases/", "api/cases/<uuid:case_id>/rollback/", "api/logs/", "api/reflection/analyze",
                     "api/suggestions/<int:suggestion_id>/approve", "api/sessions/<uuid:session_id>/stream"]:
        assert expected in routes
    assert len(routes) >= 20


def test_it_answers_errors_as_json_on_every_route_and_method(root_api):
    failures = []
    for route in _api_routes():
        path = _concrete(route, GOOD)
        for method in METHODS:
            response = getattr(root_api, method)(path)
            where = f"{method.upper()} {path}"
            if response.status_code >= 500:
                failures.append((where, response.status_code))
            elif response.status_code >= 400:
                try:
                    _assert_json_error(response, where)
                except AssertionError as error:
                    failures.append((where, str(error)[:200]))
    assert failures == []


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    # `runserver` in development runs with DEBUG on, where Django renders its HTML 404 page.
    settings.DEBUG = request.param


@pytest.mark.parametrize("route", [route for route in _api_routes() if CONVERTER.search(route)])
def test_it_answers_a_json_404_to_a_malformed_id(root_api, route, debug):
    response = root_api.get(_concrete(route, MALFORMED))
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "errors": {}}


@pytest.mark.parametrize("path", ["/api/no-such-thing", "/api/cases/search/extra/", "/api/", "/api/reflection/"])
def test_it_answers_a_json_404_to_an_unknown_path(root_api, anonymous_api, path, debug):
    for client in (root_api, anonymous_api):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found.", "errors": {}}


def test_every_route_answers_the_same_with_or_without_the_trailing_slash(root_api):
    differences = []
    for route in _api_routes():
        path = _concrete(route, GOOD)
        for method in ("get", "post"):
            canonical = getattr(root_api, method)(path)
            twin = getattr(root_api, method)(_twin(path))
            if twin.status_code != canonical.status_code:
                differences.append((f"{method.upper()} {path}", canonical.status_code, twin.status_code))
    assert differences == []


@pytest.mark.parametrize("path", ["/api/cases", "/api/logs"])
def test_it_takes_a_post_body_without_the_trailing_slash(root_api, path):
    body = {"title": "t", "query": "q", "plan": [{"agent": "data_analysis", "action": "a"}]}
    if path == "/api/logs":
        body = {"success": True, "execution_time_ms": 5}
    assert root_api.post(path, body, format="json").status_code == 201


def test_it_takes_the_reflection_paths_with_a_trailing_slash(root_api, make_case):
    case = make_case()
    response = root_api.post("/api/reflection/analyze/", {"case_id": str(case.pk)}, format="json")
    assert response.status_code == 200, response.content[:200]
