"""A real HTTP server in a thread that misbehaves on cue, for the client's background sender.

Each request takes the next `Fault` of the script (then `default`): answer with a status (and
Retry-After), wait first, hold the request until released, or close the connection without an
answer. With `upstream` (a live Caseloop) the request is forwarded first, so a fault can hit
after the server stored the logs: the answer is lost, as when a proxy times out.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    status: int | None = None  # None: the upstream's answer (or 201 without an upstream)
    retry_after: str | None = None
    delay: float = 0.0
    forward: bool = True  # with an upstream: store first, then misbehave
    hang_up: bool = False  # close the connection, no answer at all
    hold: threading.Event | None = None  # wait for this before answering
    body: Any = None


@dataclass
class Received:
    at: float
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    """A port nothing listens on (connections are refused): the "server down" case."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FaultServer:
    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self.script: list[Fault] = []
        self.default = Fault()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms a request on loopback), as no real server lets it.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                owner._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                owner._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fault in [*self.script, self.default]:
            if fault.hold is not None:
                fault.hold.set()
        self._server.shutdown()
        self._server.server_close()

    def logs_received(self) -> list[dict[str, Any]]:
        """Every log of every POST, in order (re-sent ones again)."""
        return [log for request in self.received for log in (request.body if isinstance(request.body, list) else [])]

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        """Until `count` requests have arrived (the sender works in its own thread)."""
        end = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < end, f"{len(self.received)} of {count} requests arrived"
            time.sleep(0.01)

    def _next(self) -> Fault:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        fault = self._next()
        with self._lock:
            self.received.append(Received(time.monotonic(), handler.path, json.loads(raw) if raw else None,
                                          dict(handler.headers.items())))
        if fault.hold is not None:
            fault.hold.wait(30)
        if fault.delay:
            time.sleep(fault.delay)
        status, headers, body = 201, {}, b""
        if self.upstream is not None and fault.forward:
            status, headers, body = self._forward(handler, raw)
        elif isinstance(raw, bytes) and handler.command == "POST":
            sent = json.loads(raw) if raw else []
            count = len(sent) if isinstance(sent, list) else 1
            body = json.dumps({"ids": [log.get("id") for log in sent], "created": count, "duplicates": 0}).encode()
        if fault.hang_up:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.status is not None:
            status = fault.status
            body = json.dumps(fault.body if fault.body is not None else {"detail": f"scripted {status}", "errors": {}}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if fault.retry_after is not None:
            handler.send_header("Retry-After", fault.retry_after)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _forward(self, handler: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self.upstream is not None
        connection = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30)
        try:
            forwarded = {name: value for name, value in handler.headers.items() if name.lower() != "host"}
            connection.request(handler.command, handler.path, body=raw or None, headers=forwarded)
            response = connection.getresponse()
            return response.status, {}, response.read()
        finally:
            connection.close()
