"""Per-agent and per-session timeouts, and one failing worker not sinking the others."""
from __future__ import annotations

import time

import pytest

from agents import workers
from agents.models import Session
from reflection.models import ExecutionLog
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)
PLAN = {"steps": [{"agent": "data_analysis", "action": "query"}, {"agent": "information_retrieval", "action": "docs"}]}


def test_it_times_out_a_slow_agent_and_keeps_the_others_results(api, session_llm, analytics_db, knowledge, settings):
    settings.AGENTS_AGENT_TIMEOUT_S = 2.5
    settings.AGENTS_MAX_ITERATIONS = 1
    settings.LLM_TIMEOUT_SECONDS = 6.0
    session_llm.reply(
        Reply.json(PLAN),
        Reply.json({"sql": "SELECT COUNT(*) FROM orders"}, delay=7.0),  # Text2SQL hangs past the agent timeout
        Reply.json({"scores": {"information_retrieval": 0.9}}),
    )
    started = time.monotonic()
    response = api.post("/api/sessions/", {"query": "What is the data retention period for customer backups?"}, format="json")
    hung_until = started + 6.0
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()

    # The session waited for the agent budget (2.5 s), not for the hung call (6 s client timeout).
    assert 2500 <= state["timings_ms"]["execute_1"] < 5000
    assert state["status"] == "failed" and state["passed"] is False
    assert state["errors"]["data_analysis"]["type"] == "TimeoutError"
    assert "agent timeout" in state["errors"]["data_analysis"]["message"]
    assert state["scores"]["data_analysis"] == 0.0
    assert state["scores"]["information_retrieval"] == 0.9
    assert state["results"]["information_retrieval"]["sources"][0]["title"] == "Data retention schedule"
    assert "Data retention schedule" in state["answer"]
    log = ExecutionLog.objects.get(session_id=state["id"])
    assert log.success is False and log.error_type == "TimeoutError"
    # Let the abandoned worker's HTTP call end before the tables are flushed.
    time.sleep(max(0.0, hung_until - time.monotonic()) + 0.5)


class CrashingAgent(workers.Agent):
    name = "crashing"

    def run(self, task):
        raise RuntimeError("boom")


class SlowAgent(workers.Agent):
    name = "slow"

    def run(self, task):
        time.sleep(2.0)
        return workers.AgentOutput(ok=True, data={"confidence": 1.0})


def test_it_stops_at_the_session_deadline_and_survives_a_crashing_worker(api, make_case, knowledge, no_llm, settings, monkeypatch):
    monkeypatch.setitem(workers.REGISTRY, "crashing", CrashingAgent())
    monkeypatch.setitem(workers.REGISTRY, "slow", SlowAgent())
    settings.AGENTS_AGENT_TIMEOUT_S = 30.0
    settings.AGENTS_SESSION_TIMEOUT_S = 0.8
    case = make_case(title="Runbook lookup", query="What is the runbook for a full Redis memory alert?",
                     plan=[{"agents": ["crashing", "slow", "information_retrieval"], "action": "all"}])
    response = api.post("/api/sessions/", {"query": "What is the runbook for a full Redis memory alert?"}, format="json")
    session = Session.objects.get(pk=response.json()["session_id"])
    assert session.timings_ms["total"] < 1900  # the slow worker's 2 s were not waited for
    assert session.case_id == case.id and session.status == "failed"
    assert session.errors["crashing"] == {"type": "AgentCrashed", "message": "RuntimeError: boom"}
    assert session.errors["slow"]["type"] == "TimeoutError" and "session timeout" in session.errors["slow"]["message"]
    assert session.errors["session"]["type"] == "TimeoutError"
    assert session.results["information_retrieval"]["sources"]
    assert session.iteration == 1  # no second round past the deadline
    log = ExecutionLog.objects.get(session_id=session.id)
    assert log.case_id == case.id and log.success is False
    time.sleep(1.5)  # the abandoned slow worker ends; it must not append to the finished session
    assert not session.events.filter(kind="agent", data__agent="slow").exists()
