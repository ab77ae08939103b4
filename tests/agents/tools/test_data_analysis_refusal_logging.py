"""Issue #19: the data-analysis endpoint's expected "no LLM configured" 503 is an answer, not a
fault: `django.request` logs it below ERROR (no error alert, no admin mail); a 503 the app did
not mark as expected still logs at ERROR."""
from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.django_db


def _request_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "django.request"]


def test_it_logs_the_no_llm_refusal_as_a_warning_not_an_error(api, analytics_db, no_llm, caplog):
    with caplog.at_level(logging.INFO, logger="django.request"):
        response = api.post("/api/agents/data-analysis/", {"question": "How many orders?"}, format="json")
    assert response.status_code == 503
    [record] = _request_records(caplog)
    assert record.levelno == logging.WARNING and "Service Unavailable" in record.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_it_keeps_an_unmarked_503_at_error(rf, caplog):
    from django.http import HttpResponse
    from django.utils.log import log_response

    from config.expected_refusals import ExpectedRefusals

    request = rf.get("/anything")
    logger = logging.getLogger("django.request")
    assert any(isinstance(f, ExpectedRefusals) for f in logger.filters)
    with caplog.at_level(logging.INFO, logger="django.request"):
        log_response("Service Unavailable: %s", request.path, response=HttpResponse(status=503), request=request)
    [record] = _request_records(caplog)
    assert record.levelno == logging.ERROR
