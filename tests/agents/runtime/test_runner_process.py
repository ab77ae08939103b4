"""Session runners as separate processes on a database of their own (a SQLite file, or a fresh
PostgreSQL database beside the test one): one runner holds many sessions at once, and a runner
killed with `kill -9` mid-session loses nothing - a second runner resumes the session once the
lease has passed, and its execution log is written exactly once."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.agents.sessions.test_session_stream import ROOT, _manage, standalone_database
from tests.support.openai_server import OpenAIServer, Reply

pytestmark = pytest.mark.django_db

PLAN = {"steps": [{"agent": "information_retrieval", "action": "Find the policy"}]}


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=20) as db:
            return db.execute(sql).fetchall()
    with psycopg.connect(url) as db:
        return db.execute(sql).fetchall()


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def llm() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def env(tmp_path, llm, migrated_template) -> Iterator[dict[str, str]]:
    with standalone_database(tmp_path, migrated_template) as url:
        values = {
            **os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "AGENTS_RUNNER": "1",
            "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": "test-model",
            "LLM_CALLS_PER_MINUTE": "1000", "LLM_RETRY_ATTEMPTS": "1", "LLM_TIMEOUT_SECONDS": "60",
            "AGENTS_MAX_ITERATIONS": "1", "REDIS_URL": "", "Q_SYNC": "1", "RUNNER_LOG_DIR": str(tmp_path / "logs"),
        }
        yield values


def _post_sessions(env: dict[str, str], n: int) -> list[str]:
    code = ("from agents.sessions import services; "
            f"print(' '.join(str(services.session_create(query=f'What is our refund policy? {{i}}', actor='t').id) for i in range({n})))")
    # The shell may print a banner first; the ids are the UUID-shaped words.
    return re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", _manage(env, "shell", "-c", code))


@contextmanager
def runner(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    # Output to a file: a pipe nobody reads would fill and stop the runner.
    log = open(os.path.join(os.path.dirname(env["RUNNER_LOG_DIR"]), f"runner-{time.monotonic_ns()}.log"), "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "manage.py", "run_sessions", "--lease", "2", *args], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    except BaseException:
        log.flush()
        print(log.name, open(log.name).read()[-5000:])  # noqa: SIM115  # shown by pytest when the test fails
        raise
    finally:
        log.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _finished(url: str, ids: list[str]) -> bool:
    quoted = ", ".join(f"'{i}'" for i in ids) if url.startswith("postgres") else ", ".join(f"'{i.replace('-', '')}'" for i in ids)
    (count,) = _rows(url, f"SELECT COUNT(*) FROM agents_session WHERE id IN ({quoted}) AND log_id IS NOT NULL")[0]
    return count == len(ids)


def _id(url: str, session_id: str) -> str:
    # Django stores UUIDs as 32 hex characters on SQLite, as uuid on PostgreSQL.
    return f"'{session_id}'" if url.startswith("postgres") else f"'{session_id.replace('-', '')}'"


def test_one_runner_holds_many_sessions_at_once(env, llm):
    if not env["DATABASE_URL"].startswith("postgres"):
        pytest.skip("hundreds of sessions at once need PostgreSQL (SQLite runners use few threads)")
    llm.default = Reply.json(PLAN, delay=0.5)
    ids = _post_sessions(env, 20)
    with runner(env, "--capacity", "50") as process:
        _wait_for(lambda: _finished(env["DATABASE_URL"], ids), 120, "all sessions to be logged")
        assert process.poll() is None
    spans = _rows(env["DATABASE_URL"], "SELECT started_at, finished_at, status FROM agents_session")
    assert len(spans) == 20 and all(status in ("completed", "failed") for _, _, status in spans)
    # Held at once: at the moment the last session started, most had not finished yet (one at a
    # time, each would have waited 0.5 s or more on the LLM before the next could start).
    last_start = max(str(start) for start, _, _ in spans)
    still_running = sum(1 for _, finish, _ in spans if str(finish) > last_start)
    assert still_running >= 15
    (logs,) = _rows(env["DATABASE_URL"], "SELECT COUNT(*) FROM reflection_executionlog")[0]
    assert logs == 20


def test_a_runner_with_one_thread_per_pool_awaits_many_sessions_llm_calls_at_once(env, llm):
    """The LLM calls are awaited on the runner's event loop through one AsyncOpenAI, not made in
    threads: with one thread for the agents' work and one for the database, the sessions still
    wait on the LLM together (on SQLite too)."""
    llm.default = Reply.json(PLAN)
    llm.hold(20, timeout=50)  # no planner answer until the 20 sessions all wait for one
    ids = _post_sessions(env, 20)
    with runner(env, "--capacity", "20", "--worker-threads", "1", "--db-threads", "1") as process:
        _wait_for(lambda: _finished(env["DATABASE_URL"], ids), 240, "all sessions to be logged")
        assert process.poll() is None
    # In threads, one thread would have held one call at a time.
    assert llm.most_in_flight == 20
    assert llm.user_agents and all(agent.startswith("AsyncOpenAI/Python") for agent in llm.user_agents)
    (logs,) = _rows(env["DATABASE_URL"], "SELECT COUNT(*) FROM reflection_executionlog")[0]
    assert logs == 20


def test_a_runner_killed_mid_session_loses_nothing(env, llm):
    url = env["DATABASE_URL"]
    llm.default = Reply.json(PLAN, delay=60)  # the first runner hangs in the planner
    (session_id,) = _post_sessions(env, 1)
    with runner(env, "--name", "first") as first:
        _wait_for(lambda: bool(_rows(url, f"SELECT 1 FROM agents_session WHERE id = {_id(url, session_id)} "
                                          "AND lease_owner = 'first' AND phase = 'plan'")), 60, "the first runner to plan")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    llm.default = Reply.json(PLAN)
    with runner(env, "--name", "second"):
        _wait_for(lambda: _finished(url, [session_id]), 90, "the second runner to finish the session")
    ((attempts, owner, status),) = _rows(url, f"SELECT attempts, lease_owner, status FROM agents_session WHERE id = {_id(url, session_id)}")
    assert (attempts, owner) == (2, "second") and status in ("completed", "failed")
    events = _rows(url, f"SELECT kind, data FROM agents_sessionevent WHERE session_id = {_id(url, session_id)} ORDER BY sequence")
    runners = [str(data) for kind, data in events if kind == "phase" and "runner" in str(data)]
    assert len(runners) == 2 and "first" in runners[0] and "second" in runners[1]
    assert [kind for kind, _ in events].count("logged") == 1
    (logs,) = _rows(url, f"SELECT COUNT(*) FROM reflection_executionlog WHERE session_id = {_id(url, session_id)}")[0]
    assert logs == 1


# The doorbell tests' runner polls once a minute: a session started within seconds was rung in
# (PostgreSQL `LISTEN/NOTIFY`, or on SQLite a Redis publish when `REDIS_URL` is set).
POLL_S = "60"


def test_an_idle_runner_starts_a_posted_session_on_the_doorbell(env, llm, redis_server):
    llm.default = Reply.json(PLAN)
    values = {**env, "AGENTS_RUNNER_POLL_S": POLL_S}
    if not values["DATABASE_URL"].startswith("postgres"):
        values["REDIS_URL"] = redis_server.url  # SQLite has no NOTIFY: Redis carries the ring
    url = values["DATABASE_URL"]
    (first,) = _post_sessions(values, 1)
    with runner(values) as process:
        # The first is claimed at start-up; once it is done the runner sleeps for a minute.
        _wait_for(lambda: _finished(url, [first]), 120, "the first session to finish")
        time.sleep(1.0)
        posted = time.monotonic()
        (second,) = _post_sessions(values, 1)
        _wait_for(lambda: _finished(url, [second]), 40, "the second session to be started by the doorbell")
        assert time.monotonic() - posted < 45 and process.poll() is None


def test_without_a_doorbell_the_runner_waits_for_its_poll(env, llm):
    """The control: the same runner with no NOTIFY (SQLite) and no Redis leaves the session queued."""
    if env["DATABASE_URL"].startswith("postgres"):
        pytest.skip("PostgreSQL always has its NOTIFY doorbell")
    llm.default = Reply.json(PLAN)
    values = {**env, "AGENTS_RUNNER_POLL_S": POLL_S, "REDIS_URL": ""}
    url = values["DATABASE_URL"]
    (first,) = _post_sessions(values, 1)
    with runner(values):
        _wait_for(lambda: _finished(url, [first]), 120, "the first session to finish")
        time.sleep(1.0)
        (second,) = _post_sessions(values, 1)
        time.sleep(8)
        assert not _finished(url, [second])
