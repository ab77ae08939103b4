"""What the configured log handlers write carries no password, key or token.

The output is read from the real `console` handler of `LOGGING` (its stream swapped for a
buffer), after a real request that crashes and a real LLM call that fails, so the formatter,
Django's request logger and the LLM client's failure log are all on the path.
"""
from __future__ import annotations

import io
import logging
import uuid

import pytest
from django.test import Client, override_settings
from django.urls import path

from reflection.llm import LLMError, get_llm_client
from reflection.models import LLMCall
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db

DB_PASSWORD = "hunter2-db-password"
REDIS_PASSWORD = "redis-pw-0123456789"
LLM_KEY = "sk-proj-live-key-never-logged-0123456789abcdef"
DJANGO_KEY = "django-secret-key-never-logged-abcdefghijklmnopqrstuvwxyz0123456789"
CLIENT_KEY = f"cl_{uuid.uuid4().hex}{uuid.uuid4().hex[:11]}"


def crash(request):
    raise RuntimeError(
        f"could not connect to postgres://caseloop:{DB_PASSWORD}@db:5432/caseloop "
        f"(cache redis://:{REDIS_PASSWORD}@redis:6379/0) while serving "
        f"Authorization: Token {CLIENT_KEY}; settings said SECRET_KEY={DJANGO_KEY}, "
        f"OPENAI_API_KEY={LLM_KEY}"
    )


urlpatterns = [path("crash", crash)]


@pytest.fixture
def console_output():
    """Everything the configured console handler writes during the test."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


@override_settings(ROOT_URLCONF=__name__, SECRET_KEY=DJANGO_KEY, OPENAI_API_KEY=LLM_KEY)
def test_it_redacts_the_traceback_of_a_crashed_request(console_output):
    client = Client(raise_request_exception=False)
    response = client.get("/crash", HTTP_AUTHORIZATION=f"Token {CLIENT_KEY}")
    assert response.status_code == 500
    written = console_output.getvalue()
    # The crash was logged, with its traceback and the parts that help an operator.
    assert "Internal Server Error: /crash" in written
    assert "Traceback" in written and "RuntimeError" in written
    assert "postgres://caseloop:" in written and "@db:5432/caseloop" in written
    for secret in (DB_PASSWORD, REDIS_PASSWORD, LLM_KEY, DJANGO_KEY, CLIENT_KEY):
        assert secret not in written, secret


def test_it_redacts_the_key_an_llm_provider_echoes_back(llm_settings, openai_server, console_output):
    llm_settings.OPENAI_API_KEY = LLM_KEY
    # What OpenAI answers to a wrong key: the key itself, in the error message.
    openai_server.reply(Reply.error(401, message=f"Incorrect API key provided: {LLM_KEY}."))
    with pytest.raises(LLMError):
        get_llm_client().complete_json(
            purpose="redaction-test", messages=[{"role": "user", "content": "hi"}], schema={"type": "object"}
        )
    written = console_output.getvalue()
    assert "LLM call for redaction-test" in written and "HTTP 401" in written
    assert "Incorrect API key provided" in written
    assert LLM_KEY not in written
    # The stored call record, which admin shows, is masked the same way.
    stored = LLMCall.objects.get(purpose="redaction-test").error
    assert "Incorrect API key provided" in stored and LLM_KEY not in stored


def test_it_redacts_keys_in_arguments_and_headers(console_output):
    logger = logging.getLogger("caseloop.redaction-test")
    logger.warning("retrying %s with %r", f"https://svc:{DB_PASSWORD}@api.example.com/x",
                   {"HTTP_AUTHORIZATION": f"Bearer {LLM_KEY}", "password": DB_PASSWORD})
    logger.warning("client key %s rejected", CLIENT_KEY)
    written = console_output.getvalue()
    assert "retrying https://svc:" in written and "client key" in written
    for secret in (DB_PASSWORD, LLM_KEY, CLIENT_KEY):
        assert secret not in written, secret


def test_every_configured_handler_redacts():
    from django.conf import settings

    handlers = settings.LOGGING["handlers"]
    assert handlers
    for name, handler in handlers.items():
        assert "redact_secrets" in handler.get("filters", []), name
