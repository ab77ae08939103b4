"""The event stream is in the OpenAPI document (issue #17: the SSE endpoint was missing), and
answers its refusals as documented, a key guessing address included (429, not a 500)."""
from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.test import AsyncClient

from config.schema_hooks import STREAM_EVENTS, STREAM_PATH

pytestmark = pytest.mark.django_db


def test_the_schema_describes_the_stream(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"][STREAM_PATH]["get"]
    assert operation["operationId"] == "sessions_stream"
    assert list(operation["responses"]["200"]["content"]) == ["text/event-stream"]
    for kind in ("phase", "plan", "agent", "answer_delta", "evaluation", "logged", "end"):
        assert f"`{kind}`" in operation["description"] and kind in STREAM_EVENTS
    assert {"401", "403", "404", "421", "429"} <= set(operation["responses"])
    assert operation["security"] == [{"ApiKey": []}]


def test_under_wsgi_it_answers_the_documented_421(api):
    response = api.get(f"/api/sessions/{uuid.uuid4()}/stream")
    assert response.status_code == 421 and set(response.json()) == {"detail", "errors"}


@pytest.mark.django_db(transaction=True)
def test_an_address_guessing_keys_gets_429_from_the_stream(settings):
    settings.REST_FRAMEWORK = {
        **django_settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "failed_auth": "2/min"},
    }
    statuses = []
    for _ in range(4):
        response = async_to_sync(AsyncClient().get)(
            f"/api/sessions/{uuid.uuid4()}/stream", headers={"Authorization": "Token cl_guess"},
        )
        statuses.append(response.status_code)
    assert statuses[:2] == [401, 401] and statuses[-1] == 429
    assert int(response["Retry-After"]) >= 1 and "failed authentications" in response.json()["detail"]
