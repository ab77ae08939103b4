"""A throwaway redis-server on a free loopback port, which tests may stop and start again on
the same port (an outage and a recovery). The machine's shared Redis is never touched."""
from __future__ import annotations

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


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for this test (apt-get install redis-server)"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
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
