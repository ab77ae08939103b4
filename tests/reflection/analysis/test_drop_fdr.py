"""Drops across cases are controlled for false discoveries (issue #15: per-case tests at 1 %
with no correction flagged ~100-150 of 10,000 stable cases in every daily run)."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from casebank.models import Case, CaseStatus
from reflection.analysis.engine.stats import benjamini_hochberg, success_rate_drop
from reflection.analysis.services import reflection_run_here
from reflection.models import ExecutionLog


def _daily_findings(rng: np.random.Generator, *, cases: int, dropping: int) -> tuple[list[float], list[bool]]:
    """One daily run's drop findings: stable cases at 90 %, 30 runs in the last 24 h against
    300 the week before; `dropping` of them fell to 60 %."""
    p_values, real = [], []
    for case in range(cases):
        recent_rate = 0.6 if case < dropping else 0.9
        finding = success_rate_drop(recent_runs=30, recent_successes=int(rng.binomial(30, recent_rate)),
                                    baseline_runs=300, baseline_successes=int(rng.binomial(300, 0.9)))
        if finding is not None:
            p_values.append(finding["p_value"])
            real.append(case < dropping)
    return p_values, real


def test_it_keeps_false_drops_among_10000_stable_cases_near_zero() -> None:
    p_values, real = _daily_findings(np.random.default_rng(15), cases=10_000, dropping=0)
    # Tested one by one at 1 % (Fisher-confirmed), dozens of stable cases still "drop" every
    # day (~100-150 before the exact confirmation, as the issue measured).
    assert len(p_values) >= 30
    assert len(benjamini_hochberg(p_values, tests=10_000)) <= 1


def test_it_still_finds_real_drops_among_stable_cases() -> None:
    p_values, real = _daily_findings(np.random.default_rng(16), cases=10_000, dropping=50)
    kept = benjamini_hochberg(p_values, tests=10_000)
    true_kept = sum(real[i] for i in kept)
    assert true_kept >= 30
    assert (len(kept) - true_kept) / max(len(kept), 1) <= 0.05


def test_it_is_the_step_up_procedure_on_a_known_example() -> None:
    # m = 10, q = 0.05: thresholds 0.005, 0.01, 0.015, ...; the 3rd smallest (0.012) is under
    # its 0.015, so the three smallest are kept though 0.009 > 0.005 alone would not be.
    assert benjamini_hochberg([0.009, 0.2, 0.001, 0.012, 0.04], tests=10) == {0, 2, 3}
    assert benjamini_hochberg([], tests=10) == set()


@pytest.mark.django_db
def test_a_batch_run_does_not_act_on_a_drop_that_does_not_survive_the_correction(make_case) -> None:
    now = timezone.now()
    weak = make_case(title="Dips by chance")
    # p ~ 0.003: significant alone at 1 %, not among 40 cases at a 5 % false discovery rate.
    rows = [(weak, True, 270, timedelta(days=3)), (weak, False, 30, timedelta(days=3)),
            (weak, True, 42, timedelta(hours=2)), (weak, False, 13, timedelta(hours=2))]
    for i in range(39):
        other = make_case(title=f"steady {i}")
        rows += [(other, True, 90, timedelta(days=3)), (other, False, 10, timedelta(days=3))]
    ExecutionLog.objects.bulk_create([
        ExecutionLog(case=case, case_version=1, success=success, execution_time_ms=100,
                     error_type="" if success else "TimeoutError", created_at=now - age)
        for case, success, count, age in rows for _ in range(count)
    ])

    reflection_run_here(requested_by="test")

    [drop] = [a for a in weak.analyses.latest("created_at").result["anomalies"] if a["type"] == "success_rate_drop"]
    assert 0.001 < drop["p_value"] < 0.01
    assert Case.objects.get(pk=weak.pk).status == CaseStatus.ACTIVE
