"""The LLM's answer reaches an SSE client token by token, while it is being written: a real
HTTP client reads `/api/sessions/{id}/stream` from uvicorn, the session runs in another process
(a django-q2 task's `run_session`, or a session runner) and its answer call streams from the
scripted OpenAI-compatible server through the `openai` SDK's `AsyncOpenAI`."""
from __future__ import annotations

import http.client
import json
import os
import threading

import pytest

from agents.demo import data as demo_data
from tests.agents.runtime.test_runner_process import runner
from tests.agents.sessions.test_session_stream import _manage, read_events, standalone_database
from tests.bench.support import server
from tests.support.openai_server import OpenAIServer, Reply

ANSWER = "The first row of the SQL result holds the region with the highest revenue [1]."
SQL = "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC"


def scripted(body: dict) -> Reply:
    if body.get("stream"):
        return Reply.text(ANSWER, chunk_size=4, chunk_delay=0.04)
    schema = body["messages"][0]["content"]
    if '"steps"' in schema:
        return Reply.json({"steps": [{"agent": "data_analysis", "action": "Revenue by region"}]})
    return Reply.json({"scores": {"data_analysis": 0.9}})


@pytest.mark.django_db
@pytest.mark.parametrize("runs_in", ["task", "runner"])
def test_it_streams_the_answer_token_by_token_over_sse(tmp_path, runs_in, migrated_template):
    analytics = tmp_path / "analytics.sqlite3"
    demo_data.create_demo_analytics_db(analytics)
    with standalone_database(tmp_path, migrated_template) as url, OpenAIServer() as llm:
        llm.responder = scripted
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "Q_SYNC": "1",
               "OPENAI_API_KEY": "", "LLM_MODEL": "", "SSE_POLL_S": "0.05", "REDIS_URL": "",
               "AGENTS_RUNNER": "1" if runs_in == "runner" else "0", "RUNNER_LOG_DIR": str(tmp_path / "logs")}
        key = _manage(env, "create_api_key", "answer-stream").strip().split()[-1]
        with server(kind="uvicorn", workers=1, extra_env={k: env[k] for k in ("DATABASE_URL", "OPENAI_API_KEY", "LLM_MODEL", "SSE_POLL_S", "AGENTS_RUNNER")}) as (base, _):
            host, port = base.removeprefix("http://").split(":")
            client = http.client.HTTPConnection(host, int(port), timeout=30)
            client.request("POST", "/api/sessions/", body=json.dumps({"query": "Which region had the highest revenue?", "sql": SQL}),
                           headers={"Authorization": f"Token {key}", "Content-Type": "application/json"})
            response = client.getresponse()
            assert response.status == 202
            session_id = json.loads(response.read())["session_id"]

            events: list[dict] = []
            arrivals: list[float] = []
            reader = threading.Thread(target=lambda: events.extend(read_events(base, key, session_id, arrivals=arrivals)))
            reader.start()
            runner_env = {**env, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": "test-model",
                          "LLM_RETRY_ATTEMPTS": "1", "ANALYTICS_DATABASE_URL": f"sqlite:///{analytics}"}
            if runs_in == "task":
                _manage(runner_env, "shell", "-c", f"from agents.sessions.tasks import run_session; run_session('{session_id}')")
                reader.join(60)
            else:
                with runner(runner_env):
                    reader.join(120)
            assert not reader.is_alive()

            kinds = [e["event"] for e in events]
            deltas = [(e, t) for e, t in zip(events, arrivals, strict=True) if e["event"] == "answer_delta"]
            assert len(deltas) >= 3, kinds
            assert "".join(e["data"]["text"] for e, _ in deltas) == ANSWER
            assert {e["data"]["phase"] for e, _ in deltas} == {"respond"}
            # Live: the pieces arrived over the ~0.8 s the model took to write, not all at the end.
            assert deltas[-1][1] - deltas[0][1] > 0.3
            assert kinds.index("answer_delta") < kinds.index("logged") and kinds[-1] == "end"

            client = http.client.HTTPConnection(host, int(port), timeout=30)
            client.request("GET", f"/api/sessions/{session_id}", headers={"Authorization": f"Token {key}"})
            state = json.loads(client.getresponse().read())
            assert state["answer"] == ANSWER and state["status"] == "completed", state["errors"]
            assert state["results"]["answer"]["method"] == "llm"
            stream_requests = [r for r in llm.requests if r.get("stream")]
            assert len(stream_requests) == 1 and stream_requests[0]["stream_options"] == {"include_usage": True}
