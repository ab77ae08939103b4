"""Every figure of one analysis against values worked out by hand on a small data set."""
from __future__ import annotations

from datetime import timedelta

import pytest

from reflection.analysis.engine import analyze_case
from tests.reflection.factories import NOW, add_logs

pytestmark = pytest.mark.django_db


def test_it_computes_rates_and_percentiles_by_hand(make_case, settings):
    settings.REFLECTION_HALF_LIFE_DAYS = 1.0
    case = make_case()
    # 3 successes today (age 0 days -> weight 1), 1 failure 1 day old (weight 0.5),
    # 1 failure 2 days old (weight 0.25).
    add_logs(case, count=1, success=True, ms=100, age=timedelta(0))
    add_logs(case, count=1, success=True, ms=200, age=timedelta(0))
    add_logs(case, count=1, success=True, ms=300, age=timedelta(0))
    add_logs(case, success=False, ms=400, age=timedelta(days=1), error_type="Timeout",
             error_message="timed out after 30 s on 'db-1'")
    add_logs(case, success=False, ms=5000, age=timedelta(days=2), error_type="Timeout",
             error_message="timed out after 45 s on 'db-2'")

    analysis = analyze_case(case_id=case.pk, now=NOW)

    assert analysis["total_executions"] == 5
    assert analysis["successes"] == 3
    assert analysis["success_rate"] == 0.6
    # (1 + 1 + 1) / (1 + 1 + 1 + 0.5 + 0.25) = 3 / 3.75 = 0.8
    assert analysis["weighted_success_rate"] == 0.8
    # sorted: 100 200 300 400 5000; p50 = 300; p95 rank 0.95*4 = 3.8 -> 400 + 0.8*4600 = 4080;
    # p99 rank 3.96 -> 400 + 0.96*4600 = 4816; mean = 6000 / 5 = 1200
    assert analysis["latency_ms"] == {"mean": 1200.0, "p50": 300.0, "p95": 4080.0, "p99": 4816.0}
    assert analysis["slow"] is True
    [errors] = analysis["common_errors"]
    assert errors["error_type"] == "Timeout"
    assert errors["count"] == 2
    assert errors["percentage"] == 40.0
    assert errors["templates"] == [{"template": "timed out after <n> s on '<str>'", "count": 2}]
    assert errors["example"] in {"timed out after 30 s on 'db-1'", "timed out after 45 s on 'db-2'"}
    assert analysis["confidence"] == "insufficient"
    assert analysis["anomalies"] == []


def test_it_uses_the_default_half_life_of_three_and_a_half_days(make_case):
    case = make_case()
    add_logs(case, success=True, age=timedelta(0))
    add_logs(case, success=False, age=timedelta(days=3.5), error_type="E")
    add_logs(case, success=False, age=timedelta(days=7), error_type="E")

    analysis = analyze_case(case_id=case.pk, now=NOW)

    # weights 1, 0.5, 0.25 -> 1 / 1.75
    assert analysis["weighted_success_rate"] == round(1 / 1.75, 4)
    assert analysis["success_rate"] == round(1 / 3, 4)


def test_it_orders_error_groups_and_masks_ids_numbers_and_quotes(make_case):
    case = make_case()
    add_logs(case, count=5, success=True, ms=50)
    add_logs(case, count=2, success=False, error_type="KeyError",
             error_message="missing key \"region\" in row 17")
    add_logs(case, count=1, success=False, error_type="KeyError",
             error_message="missing key \"month\" in row 3")
    add_logs(case, count=1, success=False, error_type="HTTPError",
             error_message="GET /v1/items/3f2b8c1e-9d4a-4b7e-8f00-123456789abc returned 503 at 0x7ffe")
    add_logs(case, count=1, success=False, error_type="", error_message="")

    analysis = analyze_case(case_id=case.pk, now=NOW)

    errors = analysis["common_errors"]
    assert [(e["error_type"], e["count"], e["percentage"]) for e in errors] == [
        ("KeyError", 3, 30.0),
        ("HTTPError", 1, 10.0),
        ("unknown", 1, 10.0),
    ]
    assert errors[0]["templates"] == [{"template": 'missing key "<str>" in row <n>', "count": 3}]
    assert errors[0]["example"] == 'missing key "month" in row 3'  # the smallest message: stable
    assert errors[1]["templates"][0]["template"] == "GET /v<n>/items/<id> returned <n> at <hex>"


def test_it_rounds_percentages_to_one_decimal(make_case):
    case = make_case()
    add_logs(case, count=2, success=True)
    add_logs(case, count=1, success=False, error_type="E")

    analysis = analyze_case(case_id=case.pk, now=NOW)

    assert analysis["common_errors"][0]["percentage"] == 33.3
    assert analysis["latency_ms"]["p50"] == 100.0


def test_it_gives_a_clear_empty_analysis_for_a_case_without_logs(make_case):
    case = make_case()

    analysis = analyze_case(case_id=case.pk, now=NOW)

    assert analysis == {
        "case_id": str(case.pk),
        "case_version": 1,
        "window_days": 30,
        "total_executions": 0,
        "successes": 0,
        "success_rate": None,
        "weighted_success_rate": None,
        "reuse_helped": 0.0,
        "reuse_harmed": 0.0,
        "common_errors": [],
        "latency_ms": {"mean": None, "p50": None, "p95": None, "p99": None},
        "slow": False,
        "anomalies": [],
        "confidence": "insufficient",
        "versions": [{"version": 1, "runs": 0, "successes": 0, "success_rate": None, "current": True}],
    }


def test_it_only_counts_logs_inside_the_window(make_case):
    case = make_case()
    add_logs(case, count=3, success=True, age=timedelta(days=6))
    add_logs(case, count=2, success=False, age=timedelta(days=8), error_type="E")

    assert analyze_case(case_id=case.pk, window_days=7, now=NOW)["total_executions"] == 3
    assert analyze_case(case_id=case.pk, window_days=30, now=NOW)["total_executions"] == 5


def test_it_reports_ok_confidence_from_one_hundred_runs(make_case):
    case = make_case()
    add_logs(case, count=99, success=True, ms=2500)
    assert analyze_case(case_id=case.pk, now=NOW)["confidence"] == "insufficient"
    add_logs(case, count=1, success=True, ms=2500)
    analysis = analyze_case(case_id=case.pk, now=NOW)
    assert analysis["confidence"] == "ok"
    assert analysis["slow"] is True and analysis["latency_ms"]["p95"] == 2500.0


def test_it_keeps_cases_apart_in_one_batch(make_case):
    from reflection.analysis.engine import analyze_cases

    first, second = make_case(title="first"), make_case(title="second")
    add_logs(first, count=4, success=True, ms=10)
    add_logs(second, count=1, success=False, ms=30, error_type="E")

    result = analyze_cases(case_ids=[first.pk, second.pk], now=NOW)

    assert (result[first.pk]["success_rate"], result[first.pk]["latency_ms"]["p99"]) == (1.0, 10.0)
    assert (result[second.pk]["success_rate"], result[second.pk]["latency_ms"]["p99"]) == (0.0, 30.0)
