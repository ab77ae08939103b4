"""`Caseloop`: the synchronous client (a background thread sends the logs)."""
from __future__ import annotations

import atexit
import uuid
from typing import Any

import httpx2

from caseloop_client import _http
from caseloop_client.buffer import LogBuffer, Stats
from caseloop_client.cases import CaseHit
from caseloop_client.delivery import Attempt, Backoff, SendPolicy
from caseloop_client.logs import Log
from caseloop_client.recording import Recorder
from caseloop_client.sender import ThreadSender

# How long the interpreter's exit waits for queued logs.
EXIT_FLUSH_SECONDS = 5.0


class Caseloop(Recorder):
    """Retrieve cases and record runs against a Caseloop server.

    Recording (`run`, `log`) never blocks on the network and never raises: logs wait in a
    bounded queue (`max_queue`, oldest dropped first when full) and a background thread sends
    them in batches of `batch_size` at least every `flush_interval` seconds, retrying failed
    requests up to `max_retries` times. `retrieve` is a plain call and raises `CaseloopError`.
    """

    _sender: ThreadSender

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        batch_size: int = 100,
        flush_interval: float = 2.0,
        max_queue: int = 10_000,
        max_retries: int = 5,
        backoff: Backoff | None = None,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self._http = httpx2.Client(
            base_url=base_url.rstrip("/"), headers=_http.headers(api_key), timeout=timeout, transport=transport
        )
        self._buffer = LogBuffer(max_queue)
        self._closed = False
        self._sender = ThreadSender(
            self._buffer,
            self._post_logs,
            SendPolicy.of(batch_size=batch_size, flush_interval=flush_interval, max_retries=max_retries, backoff=backoff),
        )
        atexit.register(self._close_at_exit)

    # Reading the case bank

    def retrieve(
        self, query: str, k: int = 4, *, mode: str = "hybrid", include_archived: bool = False, record_use: bool = True
    ) -> list[CaseHit]:
        """The `k` cases most like `query`, best first, each with the plan and version to run.
        `record_use` counts them as used (what a planner about to run one should do)."""
        body = _http.search_body(query, k, mode, include_archived, record_use)
        return _http.hits(self._call("POST", _http.SEARCH_PATH, json=body))

    def get_case(self, case_id: str | uuid.UUID) -> dict[str, Any]:
        """One case as the server shows it (`GET /api/cases/{id}/`)."""
        return _http.case(self._call("GET", _http.case_path(case_id)))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._closed:
            raise _http.CaseloopError("The client is closed.")
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx2.HTTPError as error:
            raise _http.CaseloopUnavailable(f"{type(error).__name__}: {error}") from error
        return _http.checked(response)

    # Sending logs (the sender thread calls this)

    def _post_logs(self, logs: list[Log]) -> Attempt:
        try:
            response = self._http.post(_http.LOGS_PATH, json=logs)
        except Exception as error:  # the sender turns every failure into a verdict
            return _http.attempt_from_error(error)
        return _http.attempt_from_response(response)

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued now; whether it was all settled (stored or given up) in time."""
        self._sender.wake()
        with self._buffer.settled:
            return self._buffer.settled.wait_for(self._buffer.is_settled, timeout)

    def close(self, timeout: float = 10.0) -> Stats:
        """Send what is queued (within `timeout`), stop the sender; later logs are dropped.
        Logs still unsent then count as failed."""
        if not self._closed:
            self._closed = True
            atexit.unregister(self._close_at_exit)
            ended = self._sender.stop(timeout)
            self._buffer.fail_all_queued("closed before it was sent")
            if ended:
                self._http.close()
        return self.stats()

    def _close_at_exit(self) -> None:
        self.close(EXIT_FLUSH_SECONDS)

    def __enter__(self) -> Caseloop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
