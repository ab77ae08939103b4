from __future__ import annotations

import re

import pytest
from django.core.cache import caches

from core import cache as layered
from reflection import metrics as reflection_metrics

pytestmark = pytest.mark.django_db


def _value(body: str, name: str, labels: str = "", default: float | None = None) -> float:
    """One sample's value; `default` when it is absent (a labelled series not yet observed)."""
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, body, re.MULTILINE)
    if match is None and default is not None:
        return default
    assert match, f"{name}{labels} not exported"
    return float(match.group(1))


def test_it_serves_prometheus_metrics_without_a_key(anonymous_api):
    response = anonymous_api.get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    assert "django_http_requests_total_by_method_total" in body
    for name in ("caseloop_logs_ingested_total", "caseloop_cache_hit_ratio", "caseloop_queue_depth",
                 "caseloop_llm_calls_total", "caseloop_analysis_seconds", "caseloop_breaker_state",
                 "caseloop_agent_cache_hit_ratio"):
        assert f"# HELP {name}" in body, name


def test_it_counts_ingested_and_duplicate_logs(api, anonymous_api, make_case):
    case = make_case()
    before = anonymous_api.get("/metrics").content.decode()
    logs = [{"case_id": str(case.id), "success": True, "execution_time_ms": 5} for _ in range(3)]
    first = api.post("/api/logs/", logs, format="json").json()
    resend = [{**log, "id": log_id} for log, log_id in zip(logs, first["ids"], strict=False)]
    api.post("/api/logs/", resend, format="json")
    after = anonymous_api.get("/metrics").content.decode()
    assert _value(after, "caseloop_logs_ingested_total") - _value(before, "caseloop_logs_ingested_total") == 3
    assert _value(after, "caseloop_logs_duplicate_total") - _value(before, "caseloop_logs_duplicate_total") == 3
    assert _value(after, "caseloop_ingest_batch_seconds_count") - _value(before, "caseloop_ingest_batch_seconds_count") == 2


def test_it_exposes_the_cache_hit_ratio(anonymous_api):
    caches["l1"].clear()
    for index in range(3):
        layered.layered_get_or_set(f"metrics-test:{index}", lambda: "v", 60)  # three misses
        layered.layered_get_or_set(f"metrics-test:{index}", lambda: "v", 60)  # three L1 hits
    body = anonymous_api.get("/metrics").content.decode()
    ratio = _value(body, "caseloop_cache_hit_ratio")
    hits = _value(body, "caseloop_cache_requests_total", '{layer="l1",result="hit"}')
    misses = _value(body, "caseloop_cache_requests_total", '{layer="l1",result="miss"}')
    l2_hits = _value(body, "caseloop_cache_requests_total", '{layer="l2",result="hit"}') if 'layer="l2",result="hit"' in body else 0.0
    assert hits >= 3 and misses >= 3
    # A hit in either layer counts; every lookup asks L1 first, so L1 hits + misses are all lookups.
    assert ratio == pytest.approx((hits + l2_hits) / (hits + misses))


def test_it_times_single_analyses_and_batch_runs(api, anonymous_api, make_case):
    from reflection.analysis import services

    case = make_case()
    logs = [{"case_id": str(case.id), "success": index % 3 != 0, "execution_time_ms": 40 + index}
            for index in range(30)]
    assert api.post("/api/logs/", logs, format="json").status_code == 201
    case_count = 'caseloop_analysis_seconds_count{kind="case"}'
    run_count = 'caseloop_analysis_seconds_count{kind="run"}'
    before = anonymous_api.get("/metrics").content.decode()

    assert api.post("/api/reflection/analyze", {"case_id": str(case.id)}, format="json").status_code == 200
    middle = anonymous_api.get("/metrics").content.decode()
    assert _value(middle, case_count) - _value(before, case_count, default=0) == 1
    assert _value(middle, 'caseloop_analysis_seconds_sum{kind="case"}') > _value(
        before, 'caseloop_analysis_seconds_sum{kind="case"}', default=0)

    run = services.reflection_run_start(case_ids=[case.id], enqueue=False)
    assert services.reflection_run_execute(run.pk).status == "completed"
    after = anonymous_api.get("/metrics").content.decode()
    assert _value(after, run_count) - _value(before, run_count, default=0) == 1
    assert _value(after, 'caseloop_analysis_seconds_sum{kind="run"}') > 0


def test_it_counts_real_llm_calls_tokens_cost_and_the_breaker(llm_settings, openai_server, anonymous_api):
    from reflection.llm import LLMError, get_llm_client
    from tests.support.openai_server import Reply

    llm_settings.LLM_BREAKER_FAILURES = 1
    before = anonymous_api.get("/metrics").content.decode()
    openai_server.reply(Reply.json({"answer": "ok"}, prompt_tokens=120, completion_tokens=30))
    get_llm_client().complete_json(purpose="metrics-test", messages=[{"role": "user", "content": "hi"}],
                                   schema={"type": "object"})
    after = anonymous_api.get("/metrics").content.decode()

    def delta(name: str, labels: str = "") -> float:
        return _value(after, name, labels) - _value(before, name, labels, default=0)

    assert delta("caseloop_llm_calls_total", '{outcome="ok"}') == 1
    assert delta("caseloop_llm_tokens_total", '{direction="in"}') == 120
    assert delta("caseloop_llm_tokens_total", '{direction="out"}') == 30
    # Prices from point_llm_at: 0.5 and 1.5 USD per 1,000 tokens in and out.
    assert delta("caseloop_llm_cost_usd_total") == pytest.approx(0.06 + 0.045)
    assert delta("caseloop_llm_call_seconds_count") == 1

    openai_server.reply(Reply.error(400))  # not retried; one failure opens this breaker
    with pytest.raises(LLMError):
        get_llm_client().complete_json(purpose="metrics-test", messages=[{"role": "user", "content": "hi"}],
                                       schema={"type": "object"})
    body = anonymous_api.get("/metrics").content.decode()
    assert _value(body, "caseloop_llm_calls_total", '{outcome="error"}') >= 1
    assert _value(body, "caseloop_breaker_state", '{name="llm"}') == 2


def test_it_refuses_an_unknown_breaker_state():
    with pytest.raises(ValueError):
        reflection_metrics.set_breaker_state(name="llm-test", state="ajar")


def test_it_reads_the_queue_depth_from_the_broker(anonymous_api):
    from django_q.brokers import get_broker

    body = anonymous_api.get("/metrics").content.decode()
    assert _value(body, "caseloop_queue_depth") == get_broker().queue_size()
