from __future__ import annotations

import re

import pytest
from django.core.cache import caches

from casebank import cache as layered
from reflection import metrics as reflection_metrics

pytestmark = pytest.mark.django_db


def _value(body: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, body, re.MULTILINE)
    assert match, f"{name}{labels} not exported"
    return float(match.group(1))


def test_it_serves_prometheus_metrics_without_a_key(anonymous_api):
    response = anonymous_api.get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    assert "django_http_requests_total_by_method_total" in body
    for name in ("caseloop_logs_ingested_total", "caseloop_cache_hit_ratio", "caseloop_queue_depth",
                 "caseloop_llm_calls_total", "caseloop_analysis_seconds", "caseloop_breaker_state"):
        assert f"# HELP {name}" in body, name


def test_it_counts_ingested_and_duplicate_logs(api, anonymous_api, make_case):
    case = make_case()
    before = anonymous_api.get("/metrics").content.decode()
    logs = [{"case_id": str(case.id), "success": True, "execution_time_ms": 5} for _ in range(3)]
    first = api.post("/api/logs/", logs, format="json").json()
    resend = [{**log, "id": log_id} for log, log_id in zip(logs, first["ids"])]
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
    assert hits >= 3 and misses >= 3
    assert ratio == pytest.approx(hits / (hits + misses))


def test_it_records_llm_calls_and_breaker_state(anonymous_api):
    reflection_metrics.record_llm_call(outcome="ok", tokens_in=120, tokens_out=30, cost_usd=0.002, seconds=0.4)
    reflection_metrics.set_breaker_state(name="llm-test", state="open")
    body = anonymous_api.get("/metrics").content.decode()
    assert _value(body, "caseloop_llm_calls_total", '{outcome="ok"}') >= 1
    assert _value(body, "caseloop_breaker_state", '{name="llm-test"}') == 2
    with pytest.raises(ValueError):
        reflection_metrics.set_breaker_state(name="llm-test", state="ajar")


def test_it_reads_the_queue_depth_from_the_broker(anonymous_api):
    from django_q.brokers import get_broker

    body = anonymous_api.get("/metrics").content.decode()
    assert _value(body, "caseloop_queue_depth") == get_broker().queue_size()
