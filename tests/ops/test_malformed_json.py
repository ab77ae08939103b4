"""Every endpoint that takes a JSON body answers 400 to malformed or absurdly deep JSON.

The operations come from the published OpenAPI schema, so an endpoint added later is covered
without touching this file. DRF's default parser recursed into 100,000 `[` until Python's
stack gave out (a 500); the project parser (casebank.parsers) refuses it.
"""
from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from casebank.access import services as access_services
from casebank.access.scopes import ALL_SCOPES

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
BODY_METHODS = ("post", "put", "patch")


def _operations_with_a_body() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in BODY_METHODS and "requestBody" in operation
    )


@pytest.fixture
def root_api(superuser) -> APIClient:
    # A superuser's key: permission checks pass, so every view gets as far as reading its body.
    _, plain = access_services.api_key_create(name="root-client", user=superuser, scopes=ALL_SCOPES)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def _concrete(path: str, case_id: str) -> str:
    path = path.replace("{case_id}", case_id)
    path = re.sub(r"\{session_id\}", "00000000-0000-4000-8000-000000000000", path)
    return re.sub(r"\{[a-z_]+\}", "1", path)


def test_the_walk_finds_the_endpoints_that_take_json():
    operations = _operations_with_a_body()
    for expected in [("post", "/api/cases/"), ("put", "/api/cases/{case_id}/"), ("post", "/api/logs/"),
                     ("post", "/api/reflection/analyze"), ("post", "/api/sessions/"),
                     ("post", "/api/suggestions/{suggestion_id}/approve")]:
        assert expected in operations
    assert len(operations) >= 12


@pytest.mark.parametrize("body", [DEEP, '{"query": "unfinished', '{"a": NaN}', b'{"a": "\xff"}'],
                         ids=["too-deep", "truncated", "nan", "not-utf8"])
def test_it_answers_400_on_every_endpoint(root_api, make_case, body):
    case = make_case()
    answers = {}
    for method, path in _operations_with_a_body():
        response = getattr(root_api, method)(_concrete(path, str(case.pk)), body, content_type="application/json")
        answers[f"{method.upper()} {path}"] = (response.status_code, response.json()["detail"][:40])
    assert {op: answer for op, answer in answers.items() if answer[0] != 400} == {}
    assert all(detail.startswith("Malformed JSON") for _, detail in answers.values())
