"""`AsyncCaseloop`: the asyncio client, the same surface as `Caseloop` with awaitable calls."""
from __future__ import annotations

import atexit
import time
import uuid
from typing import Any

import httpx2

from caseloop_client import _http
from caseloop_client.async_sender import TaskSender
from caseloop_client.buffer import LogBuffer, Stats
from caseloop_client.cases import CaseHit
from caseloop_client.delivery import Attempt, Backoff, SendPolicy, deliver
from caseloop_client.logs import Log
from caseloop_client.recording import Recorder
from caseloop_client.sender import drive, settle

EXIT_FLUSH_SECONDS = 5.0


class AsyncCaseloop(Recorder):
    """`await client.retrieve(...)`, `async with client.run(hit) as run:`, `await client.flush()`,
    `await client.close()`. Logs are sent by a task on the loop that recorded the first one;
    what is still queued when the interpreter exits gets one synchronous try."""

    _sender: TaskSender

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
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._http = httpx2.AsyncClient(
            base_url=self._base_url, headers=_http.headers(api_key), timeout=timeout, transport=transport
        )
        self._buffer = LogBuffer(max_queue)
        self._closed = False
        self._sender = TaskSender(
            self._buffer,
            self._post_logs,
            SendPolicy.of(batch_size=batch_size, flush_interval=flush_interval, max_retries=max_retries, backoff=backoff),
        )
        atexit.register(self._send_at_exit)

    async def retrieve(
        self, query: str, k: int = 4, *, mode: str = "hybrid", include_archived: bool = False, record_use: bool = True
    ) -> list[CaseHit]:
        body = _http.search_body(query, k, mode, include_archived, record_use)
        return _http.hits(await self._call("POST", _http.SEARCH_PATH, json=body))

    async def get_case(self, case_id: str | uuid.UUID) -> dict[str, Any]:
        return _http.case(await self._call("GET", _http.case_path(case_id)))

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._closed:
            raise _http.CaseloopError("The client is closed.")
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx2.HTTPError as error:
            raise _http.CaseloopUnavailable(f"{type(error).__name__}: {error}") from error
        return _http.checked(response)

    async def _post_logs(self, logs: list[Log]) -> Attempt:
        try:
            response = await self._http.post(_http.LOGS_PATH, json=logs)
        except Exception as error:
            return _http.attempt_from_error(error)
        return _http.attempt_from_response(response)

    async def flush(self, timeout: float = 10.0) -> bool:
        return await self._sender.flush(timeout)

    async def close(self, timeout: float = 10.0) -> Stats:
        if not self._closed:
            self._closed = True
            atexit.unregister(self._send_at_exit)
            await self._sender.stop(timeout)
            self._buffer.fail_all_queued("closed before it was sent")
            await self._http.aclose()
        return self.stats()

    def _send_at_exit(self) -> None:
        """The loop is gone by now: what is still queued gets one synchronous try (no retries,
        `EXIT_FLUSH_SECONDS` in all); the rest counts as failed."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + EXIT_FLUSH_SECONDS
        with httpx2.Client(base_url=self._base_url, headers=_http.headers(self._api_key),
                           timeout=min(self._timeout, EXIT_FLUSH_SECONDS)) as client:

            def post(logs: list[Log]) -> Attempt:
                try:
                    return _http.attempt_from_response(client.post(_http.LOGS_PATH, json=logs))
                except Exception as error:
                    return _http.attempt_from_error(error)

            while time.monotonic() < deadline and (batch := self._buffer.take(self._sender.policy.batch_size)):
                settle(self._buffer, batch, drive(deliver(batch, self._sender.policy), post, lambda step: False))
        self._buffer.fail_all_queued("still queued when the interpreter exited")

    async def __aenter__(self) -> AsyncCaseloop:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
