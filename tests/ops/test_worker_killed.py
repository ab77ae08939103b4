"""kill -9 a django-q2 worker in the middle of a session's background log write: every
accepted session's log is stored exactly once, and /health sees the cluster's heartbeat.

A real `manage.py qcluster` runs on a database of its own, on the ORM broker (which hands a dead
worker's task out again after Q_RETRY) and on the Redis broker (which never does: the sweeper
finishes the work from the session rows). A wrapper task (tests/ops/fault_tasks.py) pauses each
write after the log row is committed and before the session is marked logged.
"""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.ops.qcluster_support import (
    cluster_database,
    cluster_env,
    enqueue_on_redis,
    first_signal,
    hex_id,
    manage,
    qcluster,
    wait_for,
)
from tests.support.redis_server import RedisServer

SESSIONS = 6
HOLD_SECONDS = 0.4
TIMEOUT_SECONDS, RETRY_SECONDS = 3, 4

# Sessions that finished (a failed evaluation) with their log task lost; then one wrapper task
# per session, and a duplicate of the last, as a second delivery would be.
SETUP = f"""
import json, os
from django_q.brokers import get_broker
from django_q.tasks import async_task
from agents.sessions import services

ids = []
for n in range({SESSIONS}):
    session = services.session_claim(session_id=services.session_create(query=f"fault query {{n}}", actor="fault").id)
    services.session_finish(session=session, passed=False, answer="", errors={{}}, timings_ms={{}})
    ids.append(str(session.id))
get_broker().purge_queue()  # the sessions' run tasks: already done above
for session_id in [*ids, ids[-1]]:
    async_task("tests.ops.fault_tasks.slow_session_outcome", session_id, os.environ["SIGNAL_DIR"], {HOLD_SECONDS})
print(json.dumps(ids))
"""


@pytest.fixture(params=["orm", "redis"])
def cluster(request, tmp_path, migrated_template):
    broker = request.param
    signal_dir = tmp_path / "signals"
    signal_dir.mkdir()
    redis = RedisServer(tmp_path) if broker == "redis" else None
    with cluster_database(tmp_path, template=migrated_template) as database:
        try:
            if redis is not None:
                redis.start()
            env = cluster_env(tmp_path, database, timeout=TIMEOUT_SECONDS, retry=RETRY_SECONDS,
                              redis_url=redis.url if redis else "")
            ids = json.loads(manage(env, "shell", "-c", SETUP, extra={"SIGNAL_DIR": str(signal_dir)}).splitlines()[-1])
            setup_done = time.monotonic()
            with qcluster(env) as process:
                yield {"broker": broker, "process": process, "database": database, "signals": signal_dir,
                       "env": env, "ids": ids, "setup_done": setup_done, "redis": redis}
        finally:
            if redis is not None:
                redis.stop()


def _logged(database) -> set[str]:
    return {hex_id(row[0]) for row in database.query("SELECT id FROM agents_session WHERE log_id IS NOT NULL")}


def test_it_stores_every_log_exactly_once_when_a_worker_is_killed_mid_write(cluster):
    database, ids = cluster["database"], [hex_id(i) for i in cluster["ids"]]
    worker_pid, killed = first_signal(cluster["signals"])
    assert worker_pid != cluster["process"].pid
    os.kill(worker_pid, signal.SIGKILL)
    killed = hex_id(killed)
    assert killed != ids[-1], "the first writes start first; the last one is the one delivered twice"

    if cluster["broker"] == "orm":
        # The ORM broker hands the dead worker's task out again after Q_RETRY.
        wait_for(lambda: _logged(database) == set(ids), 60, "the killed write to be delivered again")
    else:
        # Redis popped it for good: the other writes finish, the killed one never comes back.
        wait_for(lambda: _logged(database) == set(ids) - {killed} and cluster["redis"].client.llen("django_q:caseloop:q") == 0,
                 60, "the other writes")
        time.sleep(RETRY_SECONDS)
        assert _logged(database) == set(ids) - {killed}, "the Redis broker delivered the task again"
        # The sweeper (every minute in production) finds the unlogged session once it is due.
        time.sleep(max(0.0, cluster["setup_done"] + RETRY_SECONDS - time.monotonic()))
        enqueue_on_redis(cluster["redis"].url, "agents.sessions.tasks.sweep_sessions_task")
        wait_for(lambda: _logged(database) == set(ids), 60, "the sweeper to write the lost log")

    logs = [hex_id(row[0]) for row in database.query("SELECT session_id FROM reflection_executionlog")]
    assert sorted(logs) == sorted(ids), "a log was lost or stored twice"
    events = database.query("SELECT session_id, COUNT(*) FROM agents_sessionevent WHERE kind = 'logged' GROUP BY session_id")
    assert {hex_id(session_id): count for session_id, count in events} == {i: 1 for i in ids}
    assert database.query("SELECT COUNT(*) FROM agents_session WHERE retry_at IS NOT NULL") == [(0,)]
    attempts = [path.name for path in cluster["signals"].iterdir() if not path.name.startswith(".")]
    assert sum(name.startswith(f"{worker_pid}-") for name in attempts) == 1
    assert database.query("SELECT COUNT(*) FROM django_q_task WHERE success = %s", (False,)) == [(0,)]


@pytest.fixture
def orm_cluster(tmp_path, migrated_template):
    with cluster_database(tmp_path, template=migrated_template) as database:
        with qcluster(cluster_env(tmp_path, database, timeout=3, retry=4)):
            yield tmp_path / "q_stats"


@pytest.mark.django_db  # the ORM broker checks its connection, here the test database's
def test_it_reports_the_cluster_heartbeat_on_health(orm_cluster, settings, monkeypatch):
    from django_q.conf import Conf

    from config.health import check_queue

    settings.CACHES = {
        **settings.CACHES,
        "q_stats_fault": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(orm_cluster)},
    }
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CACHE", "q_stats_fault")
    result = wait_for(lambda: (r := check_queue())["status"] == "up" and r, 30, "a cluster heartbeat")
    assert result["clusters"] == 1 and result["workers"] == 2
