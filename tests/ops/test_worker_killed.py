"""kill -9 a django-q2 worker in the middle of background log writes: every accepted log is
stored exactly once, and /health sees the cluster's heartbeat.

A real `manage.py qcluster` runs on its own SQLite file with the ORM broker; a wrapper task
(tests/ops/fault_tasks.py) holds each write's transaction open so the kill lands mid-write.
"""
from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.ops.qcluster_support import cluster_env, first_signal, manage, qcluster, query, wait_for

BATCHES = 6
PER_BATCH = 50
HOLD_SECONDS = 0.4
RETRY_SECONDS = 4

ENQUEUE = """
import json, os
from django_q.tasks import async_task
spec = json.load(open(os.environ["FAULT_SPEC"]))
for batch in spec["batches"]:
    async_task("tests.ops.fault_tasks.slow_logs_write", batch, spec["signal_dir"], spec["hold"])
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("qcluster")
    signal_dir = base / "signals"
    signal_dir.mkdir()
    env = cluster_env(base, timeout=3, retry=RETRY_SECONDS)
    manage(env, "migrate", "--noinput", "-v", "0")

    batches = [
        [{"id": str(uuid.uuid4()), "success": i % 3 != 0, "execution_time_ms": 10 + i, "error_type": "" if i % 3 else "TimeoutError"}
         for i in range(PER_BATCH)]
        for _ in range(BATCHES)
    ]
    # The client re-sends one batch, as it would after a timeout on its side.
    spec_file = base / "spec.json"
    spec_file.write_text(json.dumps({"batches": [*batches, batches[0]], "signal_dir": str(signal_dir), "hold": HOLD_SECONDS}))
    manage(env, "shell", "-c", ENQUEUE, extra={"FAULT_SPEC": str(spec_file)})
    with qcluster(env) as process:
        yield {"process": process, "database": base / "caseloop.sqlite3", "signals": signal_dir,
               "batches": batches, "q_stats": base / "q_stats", "tasks": BATCHES + 1}


@pytest.mark.django_db  # the ORM broker checks its connection, here the test database's
def test_it_reports_the_cluster_heartbeat_on_health(cluster, settings, monkeypatch):
    from django_q.conf import Conf

    from config.health import check_queue

    settings.CACHES = {
        **settings.CACHES,
        "q_stats_fault": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(cluster["q_stats"])},
    }
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CACHE", "q_stats_fault")
    result = wait_for(lambda: (r := check_queue())["status"] == "up" and r, 30, "a cluster heartbeat")
    assert result["clusters"] == 1 and result["workers"] == 2


def test_it_stores_every_log_exactly_once_when_a_worker_is_killed_mid_write(cluster):
    signals: Path = cluster["signals"]
    worker_pid = first_signal(signals)
    assert worker_pid != cluster["process"].pid
    os.kill(worker_pid, signal.SIGKILL)

    database = cluster["database"]

    def all_tasks_done() -> bool:
        queued = query(database, "SELECT COUNT(*) FROM django_q_ormq")[0][0]
        done = query(database, "SELECT COUNT(*) FROM django_q_task WHERE success = 1")[0][0]
        return queued == 0 and done >= cluster["tasks"]

    wait_for(all_tasks_done, 60, "every task to finish after the retry")

    expected = {uuid.UUID(log["id"]).hex for batch in cluster["batches"] for log in batch}
    rows = [row[0].replace("-", "") for row in query(database, "SELECT id FROM reflection_executionlog")]
    assert len(rows) == len(set(rows)), "a log was stored twice"
    assert set(rows) == expected, f"{len(expected - set(rows))} accepted logs were lost"
    # The killed write ran again: more write attempts than tasks.
    attempts = [path.name for path in signals.iterdir()]
    assert len(attempts) > cluster["tasks"]
    assert sum(name.startswith(f"{worker_pid}-") for name in attempts) == 1
    failed = query(database, "SELECT COUNT(*) FROM django_q_task WHERE success = 0")[0][0]
    assert failed == 0
