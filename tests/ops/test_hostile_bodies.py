"""The red team's request bodies that answered 500 (issue #17), each now a JSON 4xx.

Raw invalid UTF-8 reached msgspec's fast log decoder, which raised UnicodeDecodeError; a log
`context` nested 255+ deep parsed (orjson reads 1,024 levels) but orjson's encoder stops at 255;
a case `plan` nested 1,000 deep made DRF's JSONField recurse; a 10 MB body was Django's HTML 400
with a traceback logged at ERROR.
"""
from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from casebank.access import services as access_services
from casebank.access.scopes import ALL_SCOPES
from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db

LOG = '{"success": true, "execution_time_ms": 12, %s}'


@pytest.fixture
def root_api(superuser) -> APIClient:
    # raise_request_exception=False: a crash must show as the 500 a client would get.
    _, plain = access_services.api_key_create(name="root-client", user=superuser, scopes=ALL_SCOPES)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def _assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "errors"}
    return body


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe",
        b"\xff\xfe" + (LOG % '"model": "m"').encode("utf-16-le"),
        (LOG % '"model": "\\ud800"').encode(),
        (LOG % '"model": "\ud800"').encode("utf-8", "surrogatepass"),
        (LOG % '"context": {"note": "\udfff"}').encode("utf-8", "surrogatepass"),
        b"[" + (LOG % '"error_type": "\xff\xfe"').encode("latin-1") + b"]",
    ],
    ids=["bom-only", "utf16", "escaped-lone-surrogate", "raw-lone-surrogate", "raw-surrogate-in-context", "raw-ff-fe"],
)
def test_it_answers_400_to_bodies_that_are_not_utf8(root_api, body):
    response = root_api.post("/api/logs/", body, content_type="application/json")
    _assert_json_error(response, 400)
    assert ExecutionLog.objects.count() == 0


@pytest.mark.parametrize("depth", [255, 256, 511, 900])
@pytest.mark.parametrize("batch", [False, True], ids=["one-log", "batch"])
def test_it_answers_400_to_a_log_context_nested_deep(root_api, depth, batch):
    body = LOG % f'"context": {{"a": {"[" * depth}{"]" * depth}}}'
    response = root_api.post("/api/logs/", f"[{body}]" if batch else body, content_type="application/json")
    assert "nested more than" in _assert_json_error(response, 400)["detail"]
    assert ExecutionLog.objects.count() == 0


def test_it_still_takes_a_context_nested_within_the_limit_on_both_paths(root_api):
    nested = '{"a": ' * 60 + "1" + "}" * 60
    one = LOG % f'"context": {nested}'
    for body in (one, f"[{one}]"):
        response = root_api.post("/api/logs/", body, content_type="application/json")
        assert response.status_code == 201, response.content[:300]


@pytest.mark.parametrize("depth", [1000, 100])
def test_it_answers_400_to_a_case_plan_nested_deep(root_api, make_case, depth):
    plan = "[" * depth + "]" * depth
    body = f'{{"title": "t", "query": "q", "plan": {plan}}}'
    _assert_json_error(root_api.post("/api/cases/", body, content_type="application/json"), 400)
    case = make_case()
    for method in ("put", "patch"):
        response = getattr(root_api, method)(f"/api/cases/{case.pk}/", body, content_type="application/json")
        _assert_json_error(response, 400)


@pytest.mark.parametrize("path", ["/api/logs/", "/api/cases/", "/api/sessions/", "/api/agents/data-analysis/"])
def test_it_answers_a_json_413_to_a_10_mb_body_without_an_error_log(root_api, path, caplog):
    body = (LOG % f'"context": {{"a": "{"x" * 10_000_000}"}}').encode()
    with caplog.at_level(logging.INFO):
        response = root_api.post(path, body, content_type="application/json")
    assert "too large" in _assert_json_error(response, 413)["detail"]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
