"""Expected refusals are answers, not faults: `django.request` logs them below ERROR.

A view marks a response it gives on purpose (e.g. 503 "no LLM configured": a configuration
the operator chose, not an outage) with the `Caseloop-Expected-Refusal` header, which also
tells the client the refusal will not go away by retrying. The middleware copies the mark onto
the request, because `django.request`'s records carry the request and not the response; the
filter then lowers those records to WARNING, so error alerts and admin mails stay for faults.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEADER = "Caseloop-Expected-Refusal"
REQUEST_ATTR = "caseloop_expected_refusal"


def expected_refusal_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if response.has_header(HEADER):
            setattr(request, REQUEST_ATTR, response[HEADER])
        return response

    return middleware


class ExpectedRefusals(logging.Filter):
    """Lowers `django.request` records of marked responses from ERROR to WARNING; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if record.levelno >= logging.ERROR and getattr(request, REQUEST_ATTR, None):
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True
