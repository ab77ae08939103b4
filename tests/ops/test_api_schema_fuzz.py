"""Schemathesis against the published OpenAPI schema, in process through WSGI.

Every operation gets a few generated requests (valid and invalid) with a real API key: no
answer may be a 5xx, and every answer must match the schema (status code, content type, body).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from casebank.access import services as access_services
from casebank.access.scopes import ALL_SCOPES
from casebank.models import ApiTier
from config.wsgi import application


@pytest.fixture
def premium_key(db, settings):
    # Fuzzing sends more than a minute's worth of requests; throttling has its own tests.
    settings.REST_FRAMEWORK = {
        **django_settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"standard": "100000/min", "premium": "100000/min", "anon": "100000/min"},
    }
    return access_services.api_key_create(name="fuzzer", tier=ApiTier.PREMIUM, scopes=ALL_SCOPES)[1]


@contextmanager
def connections_kept() -> Iterator[None]:
    """Called straight through WSGI, Django would close the database connection after each
    request, and with it the test's transaction; Django's own test client detaches the same
    handlers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# schemathesis' pytest plugin does not run on pytest 9 yet, so operations are driven by hand:
# one Hypothesis run per operation, all failures collected and reported together.
def test_it_answers_every_operation_within_the_schema(premium_key):
    with connections_kept():
        labels, failures = _fuzz(premium_key)
    assert "POST /api/logs/" in labels and "POST /api/cases/search/" in labels and "POST /v1/traces" in labels
    assert "GET /api/sessions/{session_id}/stream" in labels  # described by config.schema_hooks
    assert failures == [], "\n\n".join(failures)


def _fuzz(premium_key: str) -> tuple[list[str], list[str]]:
    headers = {"Authorization": f"Token {premium_key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application, headers=headers)
    labels, failures = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case):
            response = case.call(headers=headers)
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
            )

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as error:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {str(error)[:1500]}")
    return labels, failures
