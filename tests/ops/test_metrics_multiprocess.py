"""With `PROMETHEUS_MULTIPROC_DIR`, a scrape answered by one process reports all of them.

Separate Python processes record through the real metric functions into one directory, as
gunicorn and qcluster workers do under `scripts/serve.sh`; `/metrics` (and the exporter a
qcluster pod runs) must then show their sums, the latest breaker state and hit ratios over the
merged counts.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.bench.support import free_port
from tests.ops.test_metrics import _value

ROOT = Path(settings.BASE_DIR)

WORKER = textwrap.dedent(
    """
    import sys
    from agents import metrics as agents
    from core import metrics as cache
    from reflection import metrics as reflection

    tokens, breaker = int(sys.argv[1]), sys.argv[2]
    reflection.record_llm_call(outcome="ok", tokens_in=tokens, tokens_out=10, cost_usd=0.25, seconds=0.2)
    reflection.observe_analysis(seconds=0.5, kind="run")
    reflection.set_breaker_state(name="llm", state=breaker)
    cache.cache_event("l1", "hit")
    cache.cache_event("l1", "miss")
    cache.cache_event("l2", "miss")
    agents.agent_cache_lookup(agent="data_analysis", hit=breaker == "closed")
    """
)


def _record(directory: Path, tokens: int, breaker: str) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", WORKER, str(tokens), breaker], cwd=ROOT, env=env, check=True)


@pytest.fixture
def worker_files(tmp_path):
    # Two workers, one after the other: the breaker opened in the first, closed in the second.
    _record(tmp_path, 100, "open")
    time.sleep(0.01)
    _record(tmp_path, 250, "closed")
    return tmp_path


def _assert_merged(body: str) -> None:
    assert _value(body, "caseloop_llm_calls_total", '{outcome="ok"}') == 2
    assert _value(body, "caseloop_llm_tokens_total", '{direction="in"}') == 350
    assert _value(body, "caseloop_llm_cost_usd_total") == pytest.approx(0.5)
    assert _value(body, 'caseloop_analysis_seconds_count{kind="run"}') == 2
    assert _value(body, "caseloop_breaker_state", '{name="llm"}') == 0  # the latest: closed
    assert _value(body, "caseloop_cache_requests_total", '{layer="l1",result="hit"}') == 2
    assert _value(body, "caseloop_cache_hit_ratio") == pytest.approx(0.5)
    assert _value(body, "caseloop_agent_cache_hit_ratio", '{agent="data_analysis"}') == pytest.approx(0.5)


@pytest.mark.django_db
def test_a_scrape_merges_every_process(worker_files, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(worker_files))
    response = Client().get("/metrics", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    body = response.content.decode()
    _assert_merged(body)
    assert "caseloop_queue_depth" in body


def test_the_exporter_serves_the_merged_view_without_django(worker_files):
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PROMETHEUS_MULTIPROC_DIR": str(worker_files)}
    exporter = subprocess.Popen(
        [sys.executable, "-m", "config.metrics", "--port", str(port), "--addr", "127.0.0.1"], cwd=ROOT, env=env
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                assert exporter.poll() is None, "the exporter exited"
                assert time.monotonic() < deadline, "the exporter did not start"
                time.sleep(0.1)
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
    _assert_merged(body)
    assert "caseloop_queue_depth" not in body  # the web pods report the broker, not this one
