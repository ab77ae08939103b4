"""The per-minute LLM budget is shared: two real processes together get exactly N calls."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from tests.ops.qcluster_support import ClusterDatabase, cluster_database
from tests.support.openai_server import Reply

ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def _database_url(tmp_path: Path, template: ClusterDatabase) -> Iterator[str]:
    if connection.vendor == "postgresql":
        # The test database itself: the test uses transactional_db, so the workers see it.
        parts = urlsplit(os.environ["DATABASE_URL"])
        yield urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"]))
        return
    # SQLite: the workers share a database file of their own, a copy of the migrated template.
    with cluster_database(tmp_path, template=template) as database:
        yield database.url


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("purpose", ["rate-test", "supervisor.test"])
def test_it_allows_n_calls_per_minute_across_two_processes(openai_server, tmp_path, purpose, migrated_template):
    """"rate-test" takes the shared slots (LLM_CALLS_PER_MINUTE); "supervisor.test" the
    supervisor's token-bucket budget (AGENTS_LLM_REQUESTS_PER_MINUTE): both are exact."""
    openai_server.default = Reply.json({"answer": "ok"})
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=openai_server.base_url,
        LLM_MODEL="test-model",
        LLM_CALLS_PER_MINUTE="5",
        AGENTS_LLM_REQUESTS_PER_MINUTE="5",
        LLM_RETRY_BASE_SECONDS="0.01",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )
    with _database_url(tmp_path, migrated_template) as url:
        env["DATABASE_URL"] = url
        go_file = tmp_path / "go"
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.support.llm_rate_worker", "5", str(go_file), purpose],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            for worker in workers:
                assert worker.stdout.readline().strip() == "ready"
            go_file.touch()  # both start calling at the same moment
            tallies = [json.loads(worker.communicate(timeout=120)[0].strip().splitlines()[-1]) for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
    assert sum(t["ok"] for t in tallies) == 5
    assert sum(t.get("rate_limited", 0) for t in tallies) == 5
    assert len(openai_server.requests) == 5
