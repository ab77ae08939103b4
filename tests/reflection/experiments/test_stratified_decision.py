"""The decision rule across the steps of a ramp: per-step differences combined, so a share that
grows while every version's rate falls does not make the candidate look worse (Simpson's
paradox on pooled counts). The full property, over thousands of experiments, is in
tests/bench/bench_verification.py."""
from __future__ import annotations

import pytest

from reflection.experiments.sequential import ArmCounts, Outcome, sequential_decision


def _totals(steps: list[ArmCounts]) -> dict[str, int]:
    return {
        "current_runs": sum(s.current_runs for s in steps),
        "current_successes": sum(s.current_successes for s in steps),
        "candidate_runs": sum(s.candidate_runs for s in steps),
        "candidate_successes": sum(s.candidate_successes for s in steps),
    }


# Step 1 at a 20 % share while both versions succeed 60 % of the time, step 2 at 50 % after both
# fell to 40 %: no difference inside either step, but the candidate has most of its runs in the
# worse period, so its pooled rate is 46.7 % against 53.3 %.
RAMPED = [
    ArmCounts(current_runs=1600, current_successes=960, candidate_runs=400, candidate_successes=240),
    ArmCounts(current_runs=800, current_successes=320, candidate_runs=800, candidate_successes=320),
]


def test_pooled_counts_of_a_ramp_under_drift_call_a_no_effect_change_regressed() -> None:
    # The failure the steps are there for: the same runs without their steps.
    assert sequential_decision(**_totals(RAMPED)).outcome == Outcome.ROLLBACK


def test_per_step_counts_see_no_difference() -> None:
    decision = sequential_decision(**_totals(RAMPED), steps=RAMPED)
    assert decision.outcome == Outcome.CONTINUE
    assert decision.difference == pytest.approx(0.0, abs=1e-12)
    assert decision.likelihood_ratio < 1
    assert decision.interval is not None and decision.interval[0] < 0 < decision.interval[1]
    # The arms' own rates are still the pooled ones (what was observed), beside the estimate.
    assert decision.current_rate == pytest.approx(1280 / 2400)
    assert decision.candidate_rate == pytest.approx(560 / 1200)


def test_one_step_is_the_unstratified_rule() -> None:
    counts = ArmCounts(current_runs=412, current_successes=170, candidate_runs=405, candidate_successes=212)
    alone = sequential_decision(**_totals([counts]))
    stepped = sequential_decision(**_totals([counts]), steps=[counts])
    assert stepped == alone


def test_a_real_difference_in_every_step_is_found() -> None:
    steps = [
        ArmCounts(current_runs=800, current_successes=480, candidate_runs=200, candidate_successes=150),
        ArmCounts(current_runs=500, current_successes=200, candidate_runs=500, candidate_successes=250),
    ]
    decision = sequential_decision(**_totals(steps), steps=steps)
    assert decision.outcome == Outcome.PROMOTE
    assert decision.difference is not None and 0.1 < decision.difference < 0.15


def test_a_step_with_one_empty_arm_adds_runs_but_no_evidence() -> None:
    fresh = ArmCounts(current_runs=3, current_successes=0, candidate_runs=0, candidate_successes=0)
    before = sequential_decision(**_totals(RAMPED), steps=RAMPED)
    after = sequential_decision(**_totals([*RAMPED, fresh]), steps=[*RAMPED, fresh])
    assert after.likelihood_ratio == pytest.approx(before.likelihood_ratio)
    assert after.current_runs == before.current_runs + 3


def test_steps_must_add_up_to_the_totals() -> None:
    with pytest.raises(ValueError, match="steps"):
        sequential_decision(current_runs=10, current_successes=5, candidate_runs=10, candidate_successes=5,
                            steps=RAMPED)
    bad = [ArmCounts(current_runs=5, current_successes=6, candidate_runs=0, candidate_successes=0)]
    with pytest.raises(ValueError):
        sequential_decision(current_runs=5, current_successes=6, candidate_runs=0, candidate_successes=0, steps=bad)
