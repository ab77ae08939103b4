"""A real HTTP server on 127.0.0.1 that speaks `POST /v1/chat/completions` with scripted answers.

Tests drive the official `openai` SDK against it. Script the next answers with `reply(...)`;
when the script runs out, `responder(body)` answers if set, else `default` (HTTP 500 unless
set). Every request body is kept. A request with `"stream": true` gets the answer the way the
real API streams it: Server-Sent Events of `chat.completion.chunk` objects, a few characters per
chunk (`Reply.chunk_delay` apart), a usage chunk when `stream_options.include_usage`, then
`data: [DONE]`. Image content parts (`image_url` with a base64 data URL) are checked as the
real API would: a PNG/JPEG/WebP whose bytes match its media type, beside a text part, else 400
`invalid_request_error`; each accepted one is listed in `images` (type, SHA-256, size).
`most_in_flight` is the most requests it was answering at once, and `user_agents` says which
SDK client sent each request (`AsyncOpenAI/Python …` or `OpenAI/Python …`). `hold(n)` makes each
request wait until n are in flight before it is answered (for at most `timeout` seconds, after
which the server stops holding): a test of concurrency that no timing can pass by luck.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message text for a 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int = 100
    completion_tokens: int = 50
    message: str = ""  # the error message of a non-200 (default "scripted <status>")
    chunk_size: int = 4  # characters per streamed chunk
    chunk_delay: float = 0.0  # seconds between streamed chunks

    @classmethod
    def json(cls, data: Any, **kw: Any) -> Reply:
        return cls(content=json.dumps(data), **kw)

    @classmethod
    def text(cls, text: str, **kw: Any) -> Reply:
        return cls(content=text, **kw)

    @classmethod
    def error(cls, status: int, **kw: Any) -> Reply:
        return cls(status=status, **kw)


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of connections past it is dropped and
    # retried a second later, which a real provider's server does not do.
    request_queue_size = 1024


class OpenAIServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: list[Reply] = []
        self.default: Reply = Reply.error(500)
        self.requests: list[dict] = []
        # Every image part received, checked like the API does: (media type, sha256, bytes).
        self.images: list[tuple[str, str, int]] = []
        self.responder: Callable[[dict], Reply] | None = None
        self.in_flight = 0
        self.most_in_flight = 0
        self.user_agents: list[str] = []
        self._hold_for, self._hold_timeout = 0, 0.0
        self._arrived = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms a request on loopback), as no real server lets it.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                images, problem = _image_parts(body)
                if problem:
                    # What the real API answers for a malformed image part: 400, invalid_request_error.
                    self._send(400, {"error": {"message": problem, "type": "invalid_request_error"}})
                    return
                with server._lock:
                    server.requests.append(body)
                    server.user_agents.append(self.headers.get("user-agent", ""))
                    server.images.extend(images)
                    if server._script:
                        reply = server._script.pop(0)
                    elif server.responder is not None:
                        reply = server.responder(body)
                    else:
                        reply = server.default
                server._enter()
                server._held()
                try:
                    self._answer(body, reply)
                finally:
                    server._leave()

            def _answer(self, body: dict, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    message = reply.message or f"scripted {reply.status}"
                    self._send(reply.status, {"error": {"message": message, "type": "server_error"}}, reply.headers)
                    return
                if body.get("stream"):
                    self._stream(body, reply)
                    return
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "test-model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": reply.prompt_tokens,
                            "completion_tokens": reply.completion_tokens,
                            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                        },
                    },
                    reply.headers,
                )

            def _stream(self, body: dict, reply: Reply) -> None:
                ident, model, created = f"chatcmpl-{len(server.requests)}", body.get("model", "test-model"), int(time.time())
                text = reply.content or ""
                pieces = [text[i:i + reply.chunk_size] for i in range(0, len(text), max(reply.chunk_size, 1))]

                def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
                    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
                    data: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created,
                                            "model": model, "choices": choices}
                    if usage:
                        data["usage"] = usage
                    return data

                events = [chunk({"role": "assistant", "content": ""})]
                events += [chunk({"content": piece}) for piece in pieces]
                events.append(chunk({}, finish="stop"))
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append(chunk({}, usage={
                        "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                    }))
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    for index, event in enumerate(events):
                        if index > 1 and reply.chunk_delay:
                            time.sleep(reply.chunk_delay)
                        self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
                    self._write_chunk(b"data: [DONE]\n\n")
                    self._write_chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _write_chunk(self, data: bytes) -> None:
                # HTTP/1.1 chunked transfer encoding: each SSE event leaves at once.
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def hold(self, requests: int, *, timeout: float = 30.0) -> None:
        self._hold_for, self._hold_timeout = requests, timeout

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self._hold_for and self.in_flight >= self._hold_for:
                self._release()

    def _held(self) -> None:
        with self._arrived:
            if not self._arrived.wait_for(lambda: not self._hold_for, timeout=self._hold_timeout):
                self._release()  # they do not come together: answer everyone from now on

    def _release(self) -> None:
        # Once, for all: the first answered must not make the others wait again as it leaves.
        self._hold_for = 0
        self._arrived.notify_all()

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def reply(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_SIGNATURES = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",), "image/webp": (b"RIFF",)}


def _image_parts(body: dict) -> tuple[list[tuple[str, str, int]], str]:
    """The image content parts of a Chat Completions request, each a base64 data URL whose bytes
    match its media type, sent with a text part in the same message; or why not."""
    found: list[tuple[str, str, int]] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        kinds = [part.get("type") for part in content]
        if "image_url" in kinds and "text" not in kinds:
            return [], "an image without a text part"
        for part in content:
            if part.get("type") != "image_url":
                continue
            url = (part.get("image_url") or {}).get("url", "")
            header, _, encoded = url.partition(",")
            media_type = header.removeprefix("data:").removesuffix(";base64")
            if not header.startswith("data:") or not header.endswith(";base64") or media_type not in _SIGNATURES:
                return [], f"unsupported image URL {header[:40]!r}"
            try:
                data = base64.b64decode(encoded, validate=True)
            except ValueError:
                return [], "invalid base64 image data"
            if not data.startswith(_SIGNATURES[media_type]):
                return [], f"the image data is not {media_type}"
            found.append((media_type, hashlib.sha256(data).hexdigest(), len(data)))
    return found, ""


def point_llm_at(settings: Any, server: OpenAIServer, **overrides: Any) -> None:
    """Point the LLM client at `server` through pytest-django's `settings`, with fast retries."""
    values = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": server.base_url,
        "LLM_MODEL": "test-model",
        # Generous: on a loaded machine a 2 s limit timed out scripted replies, and the retry then
        # consumed the next reply of the script. Tests of timeouts set their own.
        "LLM_TIMEOUT_SECONDS": 10.0,
        "LLM_RETRY_ATTEMPTS": 3,
        "LLM_RETRY_BASE_SECONDS": 0.01,
        "LLM_RETRY_CAP_SECONDS": 0.05,
        "LLM_CALLS_PER_MINUTE": 5,
        "LLM_BREAKER_FAILURES": 5,
        "LLM_BREAKER_RESET_SECONDS": 60.0,
        "LLM_PRICE_INPUT_PER_1K": 0.5,
        "LLM_PRICE_OUTPUT_PER_1K": 1.5,
    }
    values.update(overrides)
    for key, value in values.items():
        setattr(settings, key, value)
