"""SSE read by a real HTTP client from uvicorn (ASGI), with a session run by another process.

Everything runs against its own database (a SQLite file, or a fresh PostgreSQL database next to
the test one) so that three processes - the test, uvicorn and the session runner - share it.
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

from tests.bench.support import server
from tests.ops.qcluster_support import ClusterDatabase, cluster_database

ROOT = Path(settings.BASE_DIR)


def _manage(env: dict, *args: str, timeout: float = 180) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@contextmanager
def standalone_database(tmp_path: Path, template: ClusterDatabase) -> Iterator[str]:
    """A migrated database of its own: a copy of the session's `migrated_template`."""
    with cluster_database(tmp_path, template=template) as database:
        yield database.url


def read_events(base: str, key: str, session_id: str, *, last_event_id: int | None = None,
                stop_after: int | None = None, pings: list | None = None, arrivals: list | None = None) -> list[dict]:
    """Read the stream like a browser's EventSource; stop at `end` or after `stop_after` events.
    `arrivals` gets the `time.monotonic()` at which each event arrived."""
    host, port = base.removeprefix("http://").split(":")
    client = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Token {key}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    client.request("GET", f"/api/sessions/{session_id}/stream", headers=headers)
    response = client.getresponse()
    assert response.status == 200, response.read()
    assert response.getheader("Content-Type").startswith("text/event-stream")
    events: list[dict] = []
    current: dict = {}
    try:
        while True:
            line = response.fp.readline().decode()
            if not line:
                break
            line = line.rstrip("\n")
            if line.startswith(":"):
                if pings is not None:
                    pings.append(line)
                    if stop_after == 0 and len(pings) >= 2:
                        break
                continue
            if line == "":
                if "event" in current:
                    events.append(current)
                    if arrivals is not None:
                        arrivals.append(time.monotonic())
                    if current["event"] == "end" or (stop_after and len(events) >= stop_after):
                        break
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    finally:
        client.close()
    return events


@pytest.mark.django_db
def test_it_streams_every_phase_live_and_replays_after_last_event_id(tmp_path, migrated_template):
    with standalone_database(tmp_path, migrated_template) as url:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "Q_SYNC": "1",
               "OPENAI_API_KEY": "", "LLM_MODEL": "", "SSE_KEEPALIVE_S": "0.3"}
        key = _manage(env, "create_api_key", "sse-test").strip().split()[-1]
        with server(kind="uvicorn", workers=1, extra_env={k: env[k] for k in ("DATABASE_URL", "OPENAI_API_KEY", "LLM_MODEL", "SSE_KEEPALIVE_S")}) as (base, _):
            # Queued through the API (uvicorn has no sync queue: the task waits in the broker).
            host, port = base.removeprefix("http://").split(":")
            client = http.client.HTTPConnection(host, int(port), timeout=30)
            client.request("POST", "/api/sessions/", body=json.dumps({"query": "What response time do we promise enterprise customers?"}),
                           headers={"Authorization": f"Token {key}", "Content-Type": "application/json"})
            response = client.getresponse()
            assert response.status == 202
            session_id = json.loads(response.read())["session_id"]

            # A queued session: nothing happens yet, so the stream only sends keep-alive pings.
            pings: list[str] = []
            early = read_events(base, key, session_id, stop_after=0, pings=pings)
            assert [e["id"] for e in early] == ["1"] and pings[:2] == [": ping", ": ping"]

            live: list[dict] = []
            first_part: list[dict] = []
            reader = threading.Thread(target=lambda: live.extend(read_events(base, key, session_id)))
            partial = threading.Thread(target=lambda: first_part.extend(read_events(base, key, session_id, stop_after=4)))
            reader.start()
            partial.start()
            _manage({**env, "SSE_KEEPALIVE_S": "15"}, "shell", "-c",
                    f"from agents.tasks import run_session; run_session('{session_id}')")
            reader.join(60)
            partial.join(60)
            assert not reader.is_alive()

            ids = [int(e["id"]) for e in live if e["event"] != "end"]
            assert ids == list(range(1, len(ids) + 1))  # every event, in order, none missed
            kinds = [e["event"] for e in live]
            assert kinds[-1] == "end" and "plan" in kinds and "evaluation" in kinds and "logged" in kinds
            phases = [e["data"]["phase"] for e in live]
            for phase in ("queued", "analyse", "retrieve", "plan", "select", "execute", "evaluate", "done"):
                assert phase in phases

            # The client that dropped after 4 events reconnects with Last-Event-ID and misses nothing.
            assert [int(e["id"]) for e in first_part] == [1, 2, 3, 4]
            rest = read_events(base, key, session_id, last_event_id=4)
            assert [int(e["id"]) for e in first_part + rest if e["event"] != "end"] == ids
            assert rest[-1]["event"] == "end"

            # Errors are JSON 4xx.
            for headers, status in (({}, 401), ({"Authorization": f"Token {key}", "Last-Event-ID": "x"}, 400)):
                client = http.client.HTTPConnection(host, int(port), timeout=30)
                client.request("GET", f"/api/sessions/{session_id}/stream", headers=headers)
                response = client.getresponse()
                assert response.status == status and "detail" in json.loads(response.read())
            client.request("GET", f"/api/sessions/{uuid.uuid4()}/stream", headers={"Authorization": f"Token {key}"})
            assert client.getresponse().status == 404
