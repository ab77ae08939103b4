"""The anomaly detector: a real drop (or slowdown) in the last 24 h is flagged, noise is not."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest

from reflection.analysis.engine import analyze_case, stats
from tests.reflection.factories import NOW, add_logs

pytestmark = pytest.mark.django_db

RECENT = timedelta(hours=2)
BASELINE = timedelta(days=3)


def test_it_flags_a_significant_success_rate_drop(make_case):
    case = make_case()
    add_logs(case, count=90, success=True, age=BASELINE)
    add_logs(case, count=10, success=False, age=BASELINE, error_type="E")
    add_logs(case, count=20, success=True, age=RECENT)
    add_logs(case, count=20, success=False, age=RECENT, error_type="E")

    [anomaly] = analyze_case(case_id=case.pk, now=NOW)["anomalies"]

    # pooled p = 110/140; se = sqrt(p (1-p) (1/40 + 1/100)); z = (0.5 - 0.9) / se = -5.211
    pooled = 110 / 140
    expected_z = (0.5 - 0.9) / math.sqrt(pooled * (1 - pooled) * (1 / 40 + 1 / 100))
    assert anomaly["type"] == "success_rate_drop"
    assert (anomaly["recent_runs"], anomaly["baseline_runs"]) == (40, 100)
    assert (anomaly["recent_success_rate"], anomaly["baseline_success_rate"]) == (0.5, 0.9)
    assert anomaly["z"] == round(expected_z, 3)
    assert anomaly["p_value"] < 0.001


def test_it_does_not_flag_noise(make_case):
    case = make_case()
    add_logs(case, count=90, success=True, age=BASELINE)
    add_logs(case, count=10, success=False, age=BASELINE, error_type="E")
    add_logs(case, count=34, success=True, age=RECENT)  # 85 % vs 90 %: z = -0.84
    add_logs(case, count=6, success=False, age=RECENT, error_type="E")

    assert analyze_case(case_id=case.pk, now=NOW)["anomalies"] == []


def test_it_needs_enough_recent_runs(make_case):
    case = make_case()
    add_logs(case, count=100, success=True, age=BASELINE)
    add_logs(case, count=19, success=False, age=RECENT, error_type="E")  # all failing, but 19 < 20

    assert analyze_case(case_id=case.pk, now=NOW)["anomalies"] == []


def test_it_ignores_logs_older_than_the_baseline_week(make_case):
    case = make_case()
    add_logs(case, count=100, success=True, age=timedelta(days=9))
    add_logs(case, count=40, success=False, age=RECENT, error_type="E")

    assert analyze_case(case_id=case.pk, now=NOW)["anomalies"] == []


def test_it_flags_a_latency_regression_but_not_jitter(make_case):
    slow, jitter = make_case(title="slow"), make_case(title="jitter")
    for case in (slow, jitter):
        add_logs(case, count=50, ms=100, age=BASELINE)
        add_logs(case, count=50, ms=200, age=BASELINE)
    add_logs(slow, count=20, ms=400, age=RECENT)
    add_logs(slow, count=20, ms=500, age=RECENT)
    add_logs(jitter, count=20, ms=110, age=RECENT)
    add_logs(jitter, count=20, ms=210, age=RECENT)

    [anomaly] = analyze_case(case_id=slow.pk, now=NOW)["anomalies"]
    assert anomaly["type"] == "latency_regression"
    assert (anomaly["recent_mean_ms"], anomaly["baseline_mean_ms"]) == (450.0, 150.0)
    assert analyze_case(case_id=jitter.pk, now=NOW)["anomalies"] == []


def test_it_computes_the_latency_z_like_welch():
    # baseline 100 x {100, 200}: mean 150, sample variance 2525.25; recent 40 x {400, 500}: 450, 2564.1
    finding = stats.latency_regression(
        recent_runs=40, recent_sum=20 * 400 + 20 * 500, recent_squares=20 * 400**2 + 20 * 500**2,
        baseline_runs=100, baseline_sum=50 * 100 + 50 * 200, baseline_squares=50 * 100**2 + 50 * 200**2,
    )
    variance_recent = (20 * 400**2 + 20 * 500**2 - 40 * 450**2) / 39
    variance_baseline = (50 * 100**2 + 50 * 200**2 - 100 * 150**2) / 99
    expected = 300 / math.sqrt(variance_recent / 40 + variance_baseline / 100)
    assert finding["z"] == round(expected, 3)


@pytest.mark.parametrize("window_days", [1, 3, 7, 8, 30])
def test_it_uses_the_full_baseline_week_whatever_the_window(make_case, window_days):
    # The baseline (3 days ago) is outside a 1-day window: it must still be the baseline, and
    # the window's own figures must still be the window's alone.
    case = make_case()
    add_logs(case, count=90, success=True, ms=100, age=BASELINE)
    add_logs(case, count=10, success=False, ms=100, age=BASELINE, error_type="E")
    add_logs(case, count=20, success=True, ms=500, age=RECENT)
    add_logs(case, count=20, success=False, ms=500, age=RECENT, error_type="E")

    analysis = analyze_case(case_id=case.pk, window_days=window_days, now=NOW)

    drop = next(a for a in analysis["anomalies"] if a["type"] == "success_rate_drop")
    assert (drop["recent_runs"], drop["baseline_runs"]) == (40, 100)
    in_window = 40 if window_days < 3 else 140
    assert analysis["total_executions"] == in_window
    assert analysis["successes"] == (20 if window_days < 3 else 110)
    if window_days < 3:
        assert analysis["latency_ms"] == {"mean": 500.0, "p50": 500.0, "p95": 500.0, "p99": 500.0}
        assert analysis["weighted_success_rate"] == 0.5
