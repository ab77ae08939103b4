"""kill -9 the worker in the middle of a reflection run: the run completes, every case analysed
once, no claim left behind.

A real qcluster on a database of its own, on the ORM broker (which hands the dead worker's task
out again after Q_RETRY) and on the Redis broker (which never does: the runs sweeper rings
again once the run has been running past Q_TIMEOUT). The wrapper task in
tests/ops/fault_tasks.py pauses the first attempt inside its first analysed chunk.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from tests.ops.qcluster_support import (
    cluster_database,
    cluster_env,
    enqueue_on_redis,
    first_signal,
    manage,
    qcluster,
    wait_for,
)
from tests.support.redis_server import RedisServer

CASES = 20
LOGS_PER_CASE = 50  # below the early-trigger threshold, so no other run starts
TIMEOUT_SECONDS, RETRY_SECONDS = 3, 6

SETUP = f"""
import os
from datetime import timedelta
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task
from casebank.models import Case
from reflection.analysis import services
from reflection.logs import services as ingestion
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
run = services.reflection_run_start(trigger="api", requested_by="fault test")
get_broker().purge_queue()  # its task, replaced by the wrapper
async_task("tests.ops.fault_tasks.slow_first_reflection_run", run.pk, os.environ["SIGNAL_DIR"], 30)
print(run.pk)
"""


@pytest.fixture(params=["orm", "redis"])
def cluster(request, tmp_path, migrated_template):
    signal_dir = tmp_path / "signals"
    signal_dir.mkdir()
    redis = RedisServer(tmp_path) if request.param == "redis" else None
    with cluster_database(tmp_path, template=migrated_template) as database:
        try:
            if redis is not None:
                redis.start()
            env = cluster_env(tmp_path, database, timeout=TIMEOUT_SECONDS, retry=RETRY_SECONDS,
                              redis_url=redis.url if redis else "")
            manage(env, "shell", "-c", SETUP, extra={"SIGNAL_DIR": str(signal_dir)})
            with qcluster(env) as process:
                yield {"process": process, "database": database, "signals": signal_dir, "redis": redis}
        finally:
            if redis is not None:
                redis.stop()


def test_it_completes_the_run_after_the_worker_is_killed(cluster):
    database = cluster["database"]
    worker_pid, _ = first_signal(cluster["signals"])
    assert worker_pid != cluster["process"].pid
    (run_id, status), = database.query("SELECT id, status FROM reflection_reflectionrun")
    assert status == "running"
    os.kill(worker_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def status_of_run() -> str:
        return database.query("SELECT status FROM reflection_reflectionrun WHERE id = %s", (run_id,))[0][0]

    if cluster["redis"] is not None:
        # Redis popped the task for good: past Q_RETRY the run is still "running", nothing queued.
        time.sleep(max(0.0, killed_at + RETRY_SECONDS - time.monotonic()))
        assert status_of_run() == "running" and cluster["redis"].client.llen("django_q:caseloop:q") == 0
        # The sweeper (every minute in production) rings again; the claim takes the run over.
        enqueue_on_redis(cluster["redis"].url, "reflection.analysis.tasks.sweep_runs_task")
    wait_for(lambda: status_of_run() in ("completed", "failed"), 60, "the run to finish after the kill")

    (status, analysed, failed, error, attempts, retry_at), = database.query(
        "SELECT status, cases_analysed, cases_failed, error, attempts, retry_at FROM reflection_reflectionrun"
        " WHERE id = %s", (run_id,)
    )
    assert (status, error, failed, attempts, retry_at) == ("completed", "", 0, 2, None)
    per_case = database.query(
        "SELECT case_id, COUNT(*) FROM reflection_caseanalysis WHERE run_id = %s GROUP BY case_id", (run_id,)
    )
    assert len(per_case) == CASES == analysed, "a case was left unanalysed"
    assert {count for _, count in per_case} == {1}, "a case was analysed twice in one run"
    assert database.query("SELECT COUNT(*) FROM reflection_casereflectionstate WHERE claimed_by_id IS NOT NULL") == [(0,)]
    assert database.query("SELECT COUNT(*) FROM reflection_reflectionrun") == [(1,)]
