"""Shared pieces for benchmarks: a real server process on the bench database, and timing."""
from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlparse

from django.conf import settings
from django.db import connection

ROOT = Path(settings.BASE_DIR)


def database_url() -> str:
    """A DATABASE_URL for child processes that points at the (throwaway) bench database."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"sqlite:///{db['NAME']}"
    host = db.get("HOST") or db.get("OPTIONS", {}).get("host", "")
    user = quote(db.get("USER") or "postgres")
    password = quote(db.get("PASSWORD") or "")
    if host.startswith("/"):
        return f"postgres://{user}:{password}@/{db['NAME']}?host={quote(host)}"
    return f"postgres://{user}:{password}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(
    *, kind: str = "gunicorn", workers: int = 2, extra_env: dict | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run gunicorn (WSGI) or uvicorn (ASGI) on a free loopback port; yields (base URL, process)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "config.settings",
           "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING", **(extra_env or {})}
    if kind == "gunicorn":
        # Several workers without Redis count rate limits per process, which config.gunicorn
        # refuses; these servers measure speed, not limits, and say so.
        env.setdefault("API_ALLOW_LOCAL_RATE_LIMITS", "false" if env.get("REDIS_URL") else "true")
        command = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}",
                   "-w", str(workers), "--worker-class", "sync", "--log-level", "warning",
                   "--config", "python:config.gunicorn"]
    else:
        env["DATABASE_CONN_MAX_AGE"] = "0"  # as scripts/serve.sh sse runs it: ASGI leaks persistent connections
        command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.3)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (the machine's own Redis is never
    touched); yields its URL. Production runs on Redis, so the load benchmark does too."""
    import redis

    # Imported here: tests.support.redis_server imports this module (free_port).
    from tests.support.redis_server import redis_server_binary

    binary = redis_server_binary()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="caseloop-redis-") as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(host="127.0.0.1", port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples_s: list[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    return (f"p50 {percentile(ms, 0.5):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
            f"p99 {percentile(ms, 0.99):.1f} ms, mean {statistics.fmean(ms):.1f} ms")


def post_all(
    base: str, path: str, bodies: list[bytes], headers: dict[str, str], *, clients: int, expect: int,
    keep_alive: bool = False,
) -> tuple[float, list[float], list[str]]:
    """POST every body to `base` + `path` from `clients` threads at once; returns the wall time,
    each request's latency and the statuses other than `expect` (or with a body, for 200s of
    OTLP where a body means partial success: pass expect=200 and keep_alive for exporters)."""
    target = urlparse(base)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(bodies)

    def client() -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        while True:
            with lock:
                if not queue:
                    connection.close()
                    return
                body = queue.pop()
            started = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            answer = response.read()
            elapsed = time.perf_counter() - started
            if not keep_alive:
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            with lock:
                latencies.append(elapsed)
                if response.status != expect or (expect == 200 and answer):
                    failures.append(str(response.status))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures
