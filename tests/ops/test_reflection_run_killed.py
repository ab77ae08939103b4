"""kill -9 the worker in the middle of a reflection run: the task is handed out again and the
run completes, every case analysed once, no claim left behind.

A real qcluster on its own SQLite file (ORM broker); the wrapper task in
tests/ops/fault_tasks.py pauses the first attempt inside its first analysed chunk.
"""
from __future__ import annotations

import os
import signal

import pytest

from tests.ops.qcluster_support import cluster_env, first_signal, manage, qcluster, query, wait_for

CASES = 20
LOGS_PER_CASE = 50  # below the early-trigger threshold, so no other run starts

SETUP = f"""
import os
from datetime import timedelta
from django.utils import timezone
from django_q.tasks import async_task
from casebank.models import Case
from reflection import ingestion, services
from reflection.models import ExecutionLog

now = timezone.now()
items = []
for index in range({CASES}):
    # Plain rows: the run under test needs cases and logs, not embeddings.
    case = Case(title=f"fault case {{index}}", query=f"fault query {{index}}", plan=[{{"agent": "a"}}],
                category="ops/fault", tags=[])
    case.save()
    for n in range({LOGS_PER_CASE}):
        items.append({{"case_id": str(case.id), "success": n % 4 != 0, "execution_time_ms": 100 + n,
                      "error_type": "" if n % 4 else "TimeoutError",
                      "created_at": (now - timedelta(hours=n)).isoformat()}})
ingestion.logs_ingest(records=ingestion.parse_batch(items))
# Settled: a full run leaves logs of the last REFLECTION_INGEST_SETTLE_SECONDS to the next run.
ExecutionLog.objects.update(ingested_at=now - timedelta(minutes=5))
run = services.reflection_run_start(trigger="api", requested_by="fault test", enqueue=False)
async_task("tests.ops.fault_tasks.slow_first_reflection_run", run.pk, os.environ["SIGNAL_DIR"], 30)
print(run.pk)
"""


@pytest.fixture
def cluster(tmp_path):
    signal_dir = tmp_path / "signals"
    signal_dir.mkdir()
    env = cluster_env(tmp_path, timeout=3, retry=6)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "shell", "-c", SETUP, extra={"SIGNAL_DIR": str(signal_dir)})
    with qcluster(env) as process:
        yield {"process": process, "database": tmp_path / "caseloop.sqlite3", "signals": signal_dir}


def test_it_completes_the_run_on_retry_after_the_worker_is_killed(cluster):
    database = cluster["database"]
    worker_pid = first_signal(cluster["signals"])
    assert worker_pid != cluster["process"].pid
    (run_id, status), = query(database, "SELECT id, status FROM reflection_reflectionrun")
    assert status == "running"
    os.kill(worker_pid, signal.SIGKILL)

    wait_for(
        lambda: query(database, "SELECT status FROM reflection_reflectionrun WHERE id = ?", (run_id,))[0][0]
        in ("completed", "failed"),
        60,
        "the run to finish after the retry",
    )
    (status, analysed, failed, error), = query(
        database, "SELECT status, cases_analysed, cases_failed, error FROM reflection_reflectionrun WHERE id = ?", (run_id,)
    )
    assert (status, error) == ("completed", "")
    assert failed == 0
    per_case = query(
        database, "SELECT case_id, COUNT(*) FROM reflection_caseanalysis WHERE run_id = ? GROUP BY case_id", (run_id,)
    )
    assert len(per_case) == CASES, "a case was left unanalysed"
    assert {count for _, count in per_case} == {1}, "a case was analysed twice in one run"
    assert query(database, "SELECT COUNT(*) FROM reflection_casereflectionstate WHERE claimed_by_id IS NOT NULL") == [(0,)]
    assert query(database, "SELECT COUNT(*) FROM reflection_reflectionrun") == [(1,)]
