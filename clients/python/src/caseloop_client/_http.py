"""HTTP plumbing shared by the sync and async clients: headers, answers, errors."""
from __future__ import annotations

import uuid
from typing import Any

import httpx2

from caseloop_client.cases import CaseHit, hit_from_result
from caseloop_client.delivery import Attempt

LOGS_PATH = "/api/logs/"
SEARCH_PATH = "/api/cases/search/"
USER_AGENT = "caseloop-client-python/0.1.0"


class CaseloopError(Exception):
    """A call the agent waits for (`retrieve`, `get_case`) did not succeed."""


class CaseloopUnavailable(CaseloopError):
    """No answer from the server: refused, reset or timed out."""


class ApiError(CaseloopError):
    """The server answered with an error status."""

    def __init__(self, status: int, detail: str, errors: Any = None) -> None:
        super().__init__(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")
        self.status = status
        self.detail = detail
        self.errors = errors or {}


def headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Token {api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"}


def json_body(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # an HTML error page from a proxy, an empty body
        return None


def attempt_from_response(response: httpx2.Response) -> Attempt:
    return Attempt(status=response.status_code, body=json_body(response), retry_after=response.headers.get("Retry-After"))


def attempt_from_error(error: Exception) -> Attempt:
    # Timeouts and broken connections may come back; a bad URL or protocol never does.
    retryable = isinstance(error, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError))
    return Attempt(status=None, error=f"{type(error).__name__}: {error}"[:300], retryable=retryable)


def checked(response: httpx2.Response) -> Any:
    """The JSON of a successful answer, or `ApiError`."""
    body = json_body(response)
    if response.status_code >= 400:
        detail = body.get("detail", "") if isinstance(body, dict) else ""
        errors = body.get("errors") if isinstance(body, dict) else None
        raise ApiError(response.status_code, str(detail), errors)
    return body


def search_body(query: str, k: int, mode: str, include_archived: bool, record_use: bool) -> dict[str, Any]:
    return {"query": query, "k": k, "mode": mode, "include_archived": include_archived, "record_use": record_use}


def hits(body: Any) -> list[CaseHit]:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise CaseloopError("The search answer holds no results list.")
    return [hit_from_result(item) for item in body["results"]]


def case_path(case_id: str | uuid.UUID) -> str:
    return f"/api/cases/{uuid.UUID(str(case_id))}/"  # ValueError for an id that is no UUID


def case(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise CaseloopError("The case answer is not a JSON object.")
    return body
