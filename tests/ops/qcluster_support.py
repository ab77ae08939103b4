"""A real `manage.py qcluster` for the fault tests, on the ORM broker (the embedded default) or
the Redis broker (production, against our own redis-server), and on a database of its own of
the suite's kind: a SQLite file, or a fresh database on the suite's PostgreSQL server."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import urlsplit

import psycopg
from django.conf import settings
from django.db import connection

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


@dataclass
class ClusterDatabase:
    url: str
    path: Path | None = None  # the SQLite file; None on PostgreSQL
    name: str = ""  # the PostgreSQL database

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on its own connection; `%s` placeholders on both databases."""
        if self.path is not None:
            with sqlite3.connect(self.path, timeout=20) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def hex_id(value: Any) -> str:
    """A UUID column's value as 32 hex digits (SQLite stores them so, PostgreSQL as uuid)."""
    return uuid.UUID(str(value)).hex


@contextmanager
def cluster_database(base: Path, *, template: ClusterDatabase | None = None) -> Iterator[ClusterDatabase]:
    """An empty database, or a copy of `template` (migrating one costs seconds, copying not)."""
    if connection.vendor != "postgresql":
        path = base / "caseloop.sqlite3"
        if template is not None:
            with sqlite3.connect(template.path) as source, sqlite3.connect(path) as target:
                source.backup(target)
        yield ClusterDatabase(url=f"sqlite:///{path}", path=path)
        return
    # The suite's own server, as settings read it (its host may be a socket directory given in
    # the query string, as the embedded server's is): only the database name changes.
    suite = urlsplit(os.environ["DATABASE_URL"])
    name = f"caseloop_fault_{uuid.uuid4().hex[:12]}"
    maintenance = suite._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template.name}"' if template else ""))
    try:
        yield ClusterDatabase(url=suite._replace(path=f"/{name}").geturl(), name=name)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cluster_env(base: Path, database: ClusterDatabase, *, timeout: int, retry: int, workers: int = 2,
                redis_url: str = "") -> dict[str, str]:
    assert retry > timeout, "django-q2 hands a task out twice if retry <= timeout"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # tasks queued from this process are signed with it
        "DATABASE_URL": database.url,
        "Q_STATS_DIR": str(base / "q_stats"),
        "Q_WORKERS": str(workers),
        "Q_TIMEOUT": str(timeout),
        "Q_RETRY": str(retry),
        "LOG_LEVEL": "WARNING",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url  # the Redis broker (and cache), as in production
    return env


def manage(env: dict[str, str], *args: str, extra: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**env, **(extra or {})},
                            check=True, stdout=subprocess.PIPE, text=True)
    return result.stdout


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


def first_signal(signal_dir: Path, timeout: float = 30) -> tuple[int, str]:
    """The pid of the first worker that announced it is inside the slowed-down section, and
    what it wrote there (the id of the work it holds)."""
    first = wait_for(lambda: sorted(signal_dir.iterdir()), timeout, "a worker inside the section")[0]
    return int(first.name.split("-")[0]), first.read_text()


def enqueue_on_redis(url: str, func: str, *args: Any) -> None:
    """Queue one task on a cluster's Redis broker from this process (signed with the same key)."""
    from django_q.conf import Conf
    from django_q.tasks import async_task

    with patch.multiple(Conf, SYNC=False, ORM=None, DJANGO_REDIS=None, REDIS=url):
        async_task(func, *args)
