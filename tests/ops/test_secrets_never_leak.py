"""Secrets from the environment never reach a response body, a header or a log line."""
from __future__ import annotations

import logging
import uuid

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

LLM_KEY = "sk-live-openai-key-never-shown-0123456789"
DJANGO_KEY = "django-secret-key-never-shown-abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture
def secret_settings():
    with override_settings(
        OPENAI_API_KEY=LLM_KEY, LLM_MODEL="gpt-test", OPENAI_BASE_URL="http://127.0.0.1:9/v1", SECRET_KEY=DJANGO_KEY
    ):
        yield


def _exchanges(api, anonymous_api, client_key: str, case_id: str):
    wrong = f"cl_{uuid.uuid4().hex}{uuid.uuid4().hex}"
    anonymous_api.credentials(HTTP_AUTHORIZATION=f"Token {wrong}")
    yield anonymous_api.get("/api/cases/")  # 401 with a wrong key
    anonymous_api.credentials()
    yield anonymous_api.get("/api/logs/")  # 401 without a key
    yield api.post("/api/logs/", [{"success": "maybe", "execution_time_ms": -1}], format="json")  # 400
    yield api.post("/api/cases/", {"title": ""}, format="json")  # 400
    yield api.get(f"/api/cases/{uuid.uuid4()}/")  # 404
    yield api.get(f"/api/cases/{case_id}/")  # 200
    yield api.post("/api/logs/", b"{not json", content_type="application/json")  # 400 parse error
    yield anonymous_api.get("/health")
    yield anonymous_api.get("/health/ready")
    yield anonymous_api.get("/metrics")
    yield anonymous_api.get("/api/schema/")  # 401: the description needs a key too


def test_it_keeps_secrets_out_of_responses_and_logs(secret_settings, api, api_key, anonymous_api, make_case, caplog):
    case = make_case()
    plain_key = api_key[1]
    with caplog.at_level(logging.DEBUG):
        responses = list(_exchanges(api, anonymous_api, plain_key, str(case.id)))
    statuses = [response.status_code for response in responses]
    assert statuses[:7] == [401, 401, 400, 400, 404, 200, 400]
    assert all(code < 500 for code in statuses)
    for response in responses:
        exposed = response.content.decode(errors="replace") + repr(dict(response.headers))
        for secret in (LLM_KEY, DJANGO_KEY, plain_key):
            assert secret not in exposed, response.request["PATH_INFO"]
    for secret in (LLM_KEY, DJANGO_KEY, plain_key):
        assert secret not in caplog.text
    assert "Unauthorized" in caplog.text  # the log was captured, so the check above means something


def test_it_reports_the_llm_on_health_without_its_address_or_key(secret_settings, anonymous_api):
    body = anonymous_api.get("/health").content.decode()
    assert '"configured": true' in body
    assert LLM_KEY not in body and "127.0.0.1:9" not in body
