"""The sequential decision rule (reflection.experiments.sequential): its outcomes on known
counts, and, in small fixed-seed simulations, its error rate under repeated looks beside the
z-test that verification re-ran at every look (issue #15). The full property, over thousands
of experiments, is in tests/bench/bench_verification.py."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reflection.experiments.sequential import Outcome, sequential_decision
from reflection.models import Verification
from reflection.suggestions.services import verification_compare


def test_it_promotes_a_clearly_better_candidate() -> None:
    decision = sequential_decision(current_runs=500, current_successes=200, candidate_runs=500, candidate_successes=265)
    assert decision.outcome == Outcome.PROMOTE
    assert decision.likelihood_ratio >= decision.threshold == pytest.approx(20)
    assert decision.p_value <= 0.05
    assert decision.interval is not None
    low, high = decision.interval
    assert 0 < low < 0.13 < high


def test_it_rolls_back_a_clearly_worse_candidate() -> None:
    decision = sequential_decision(current_runs=500, current_successes=265, candidate_runs=500, candidate_successes=200)
    assert decision.outcome == Outcome.ROLLBACK
    assert decision.interval is not None and decision.interval[1] < 0


def test_it_does_not_decide_on_a_difference_a_fixed_sample_test_would_call() -> None:
    # z = 2.0 (p = 0.046 for a single look) is far from enough evidence when anyone may look
    # at any time: the mixture ratio is ~1.7, the threshold 20.
    decision = sequential_decision(current_runs=600, current_successes=240, candidate_runs=600, candidate_successes=274)
    detail = verification_compare(before_runs=600, before_successes=240, after_runs=600, after_successes=274, min_runs=30)
    assert detail["status"] == Verification.IMPROVED
    assert decision.outcome == Outcome.CONTINUE
    assert decision.interval is not None and decision.interval[0] < 0 < decision.interval[1]


def test_it_waits_for_the_minimum_sample_on_both_arms() -> None:
    decision = sequential_decision(current_runs=1000, current_successes=900, candidate_runs=99, candidate_successes=10)
    assert decision.outcome == Outcome.CONTINUE
    assert decision.p_value == 1.0  # looks before the minimum do not count
    assert sequential_decision(current_runs=1000, current_successes=900, candidate_runs=100,
                               candidate_successes=10).outcome == Outcome.ROLLBACK


def test_it_is_inconclusive_when_both_arms_reach_the_maximum() -> None:
    kwargs: dict[str, Any] = dict(current_successes=200, candidate_successes=201, min_runs_per_arm=100, max_runs_per_arm=500)
    assert sequential_decision(current_runs=500, candidate_runs=499, **kwargs).outcome == Outcome.CONTINUE
    assert sequential_decision(current_runs=500, candidate_runs=500, **kwargs).outcome == Outcome.INCONCLUSIVE


def test_it_reports_the_running_minimum_p_value() -> None:
    first = sequential_decision(current_runs=300, current_successes=120, candidate_runs=300, candidate_successes=140)
    later = sequential_decision(current_runs=400, current_successes=165, candidate_runs=400, candidate_successes=165,
                                previous_p_value=first.p_value)
    assert first.p_value < 1
    assert later.p_value == first.p_value


def test_it_sees_no_difference_between_identical_arms_at_the_extremes() -> None:
    decision = sequential_decision(current_runs=200, current_successes=200, candidate_runs=200, candidate_successes=200)
    assert decision.outcome == Outcome.CONTINUE
    assert decision.likelihood_ratio == 1.0
    assert decision.interval is not None
    low, high = decision.interval
    assert low < 0 < high  # an arm at 100 % is not certainty


@pytest.mark.parametrize(
    "counts",
    [dict(current_runs=10, current_successes=11), dict(current_runs=-1, current_successes=0),
     dict(alpha=0.0), dict(min_runs_per_arm=50, max_runs_per_arm=10), dict(mixture_sd=0.0), dict(previous_p_value=0.0)],
)
def test_it_rejects_impossible_input(counts: dict) -> None:
    arguments: dict[str, Any] = dict(current_runs=10, current_successes=5, candidate_runs=10, candidate_successes=5) | counts
    with pytest.raises(ValueError):
        sequential_decision(**arguments)


# --- repeated looks (the measurements, small and seeded) ------------------------

LOOKS = 30
BEFORE_RUNS = 300


def _before_after_experiments(*, experiments: int, rate_before: float, rate_after: float, seed: int):
    """The issue's set-up: 300 runs of the base version, then 30 looks of 30-40 new runs each."""
    rng = np.random.default_rng(seed)
    for _ in range(experiments):
        before_successes = int(rng.binomial(BEFORE_RUNS, rate_before))
        batches = rng.integers(30, 41, size=LOOKS)
        after_runs = np.cumsum(batches)
        after_successes = np.cumsum(rng.binomial(batches, rate_after))
        yield before_successes, list(zip(after_runs.tolist(), after_successes.tolist(), strict=True))


def test_it_keeps_false_verdicts_under_5_percent_over_30_looks_where_the_z_test_does_not() -> None:
    z_test_false = sequential_false = 0
    experiments = 400
    for before_successes, looks in _before_after_experiments(experiments=experiments, rate_before=0.4,
                                                             rate_after=0.4, seed=15):
        z_verdicts = {
            verification_compare(before_runs=BEFORE_RUNS, before_successes=before_successes, after_runs=runs,
                                 after_successes=successes, min_runs=30)["status"]
            for runs, successes in looks
        }
        z_test_false += bool(z_verdicts & {Verification.IMPROVED, Verification.REGRESSED})
        sequential_false += any(
            sequential_decision(current_runs=BEFORE_RUNS, current_successes=before_successes, candidate_runs=runs,
                                candidate_successes=successes).outcome in (Outcome.PROMOTE, Outcome.ROLLBACK)
            for runs, successes in looks
        )
    # Issue #15 measured 16-25 % for the z-test re-run at every look (nominal 5 %).
    assert z_test_false / experiments > 0.12
    assert sequential_false / experiments <= 0.05


def test_it_keeps_false_decisions_under_5_percent_when_both_arms_run_together() -> None:
    rng = np.random.default_rng(2015)
    experiments, false = 300, 0
    for _ in range(experiments):
        share = 0.2  # a canary
        batches = np.full(60, 50)
        candidate = rng.binomial(batches, share)
        current = batches - candidate
        rate = np.linspace(0.5, 0.4, len(batches))  # both arms drift down 10 points together
        looks = zip(np.cumsum(current), np.cumsum(rng.binomial(current, rate)), np.cumsum(candidate),
                    np.cumsum(rng.binomial(candidate, rate)), strict=True)
        false += any(
            sequential_decision(current_runs=int(a), current_successes=int(b), candidate_runs=int(c),
                                candidate_successes=int(d)).outcome in (Outcome.PROMOTE, Outcome.ROLLBACK)
            for a, b, c, d in looks
        )
    assert false / experiments <= 0.05
