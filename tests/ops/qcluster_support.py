"""A real `manage.py qcluster` on its own SQLite file (ORM broker), for the fault tests."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cluster_env(base: Path, *, timeout: int, retry: int, workers: int = 2) -> dict[str, str]:
    assert retry > timeout, "django-q2 hands a task out twice if retry <= timeout"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{base / 'caseloop.sqlite3'}",
        "Q_STATS_DIR": str(base / "q_stats"),
        "Q_WORKERS": str(workers),
        "Q_TIMEOUT": str(timeout),
        "Q_RETRY": str(retry),
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *args: str, extra: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**env, **(extra or {})}, check=True)


@contextmanager
def qcluster(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        # The whole session (sentinel, pusher, monitor, workers) is ours and no longer needed.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def query(database: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(database, timeout=20) as connection:
        return connection.execute(sql, params).fetchall()


def first_signal(signal_dir: Path, timeout: float = 30) -> int:
    """The pid of the first worker that announced it is inside the slowed-down section."""
    first = wait_for(lambda: sorted(signal_dir.iterdir()), timeout, "a worker inside the section")[0]
    return int(first.name.split("-")[0])
