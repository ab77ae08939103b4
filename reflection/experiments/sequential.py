"""The sequential decision rule of an experiment: an always-valid test for two proportions.

A candidate version and the current version of a plan run in the same period; after any
number of new runs, `sequential_decision` says `promote`, `rollback`, `inconclusive` or
`continue`. It may be re-evaluated after every run or batch of runs, as often as anyone
likes: the chance that it ever says `promote` or `rollback` when the two versions succeed
equally often stays below `alpha` (5 % by default). A fixed-sample z-test re-run at every
look does not (docs/experiments.md; tests/bench/bench_verification.py measures both).

The statistic is the mixture sequential probability ratio test (mSPRT) of Johari, Koomen,
Pekelis and Walsh, "Peeking at A/B tests" (KDD 2017; "Always valid inference", Operations
Research 2022), for the difference of two success rates: the likelihood ratio of
"difference ~ Normal(0, tau^2)" against "difference = 0", computed from the normal
approximation of the observed difference. Under no difference it is (asymptotically) a
martingale with mean 1, so by Ville's inequality it ever reaches 1/alpha with probability at
most alpha, whatever the looks. It depends on the cumulative counts only, so daily roll-ups
that keep per-version counts are enough to evaluate it. Validity is asymptotic (the normal
approximation), hence the minimum sample per arm before any decision; the benchmark proves
the error rate by simulation at the defaults.

When the traffic share changes during an experiment (a ramp: 20 % then 50 %), the counts are
passed per step as well: the difference is estimated inside each step, where both arms ran at a
fixed share in the same period, and the steps' differences are combined (weighted by each
step's effective sample size) into one estimate with its variance, which feeds the same test.
Pooled counts would be biased as soon as the rates drift: the candidate arm has more of its
runs in the later steps (Simpson's paradox).
"""
from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_ALPHA = 0.05
# The spread of differences the test is tuned to find, in rate points: power is best for true
# differences around 0.05-0.15 (docs/experiments.md has the trade-off).
DEFAULT_MIXTURE_SD = 0.1
DEFAULT_MIN_RUNS_PER_ARM = 100
DEFAULT_MAX_RUNS_PER_ARM = 5_000


class Outcome(enum.StrEnum):
    CONTINUE = "continue"  # no decision yet: keep serving both arms
    PROMOTE = "promote"  # the candidate succeeds significantly more often
    ROLLBACK = "rollback"  # the candidate succeeds significantly less often
    INCONCLUSIVE = "inconclusive"  # both arms reached the maximum sample without a difference


@dataclass(frozen=True)
class ArmCounts:
    """Runs and successes of both arms: cumulative, or within one step of a ramp."""

    current_runs: int
    current_successes: int
    candidate_runs: int
    candidate_successes: int


def total_counts(steps: Sequence[ArmCounts]) -> ArmCounts:
    """The counts of several steps added up."""
    return ArmCounts(*(sum(getattr(step, name) for step in steps) for name in (
        "current_runs", "current_successes", "candidate_runs", "candidate_successes")))


@dataclass(frozen=True)
class Estimate:
    """The step-weighted difference (candidate - current), its variance under no difference
    (pooled rate inside each step: the test) and its variance from each arm's own rate (the
    interval). None when no step has runs on both arms."""

    difference: float
    null_variance: float
    variance: float


def _smoothed_variance(successes: int, runs: int) -> float:
    # Half a pseudo-success and half a pseudo-failure: an arm at 0 % or 100 % has no observed
    # spread, and an interval of width zero would be a claim of certainty.
    rate = (successes + 0.5) / (runs + 1)
    return rate * (1 - rate) / runs


def stratified_estimate(steps: Sequence[ArmCounts]) -> Estimate | None:
    """Combine the per-step differences with Cochran-Mantel-Haenszel weights
    `h = n_current * n_candidate / (n_current + n_candidate)`, which depend on the counts only.
    With one step this is the plain difference of the two rates and its usual variances."""
    weight_sum = difference_sum = null_sum = variance_sum = 0.0
    for step in steps:
        n_current, n_candidate = step.current_runs, step.candidate_runs
        if not n_current or not n_candidate:
            continue  # a step with an empty arm holds no comparison (yet)
        weight = n_current * n_candidate / (n_current + n_candidate)
        pooled = (step.current_successes + step.candidate_successes) / (n_current + n_candidate)
        weight_sum += weight
        difference_sum += weight * (step.candidate_successes / n_candidate - step.current_successes / n_current)
        # weight^2 * pooled(1 - pooled)(1/n_current + 1/n_candidate) = weight * pooled(1 - pooled)
        null_sum += weight * pooled * (1 - pooled)
        variance_sum += weight * weight * (_smoothed_variance(step.current_successes, n_current)
                                           + _smoothed_variance(step.candidate_successes, n_candidate))
    if not weight_sum:
        return None
    return Estimate(difference=difference_sum / weight_sum, null_variance=null_sum / weight_sum**2,
                    variance=variance_sum / weight_sum**2)


@dataclass(frozen=True)
class SequentialDecision:
    outcome: Outcome
    current_runs: int
    candidate_runs: int
    current_rate: float | None
    candidate_rate: float | None
    difference: float | None  # candidate rate - current rate
    likelihood_ratio: float  # the mixture likelihood ratio at this look; decides at >= 1/alpha
    threshold: float  # 1 / alpha
    p_value: float  # always-valid p-value: min over the looks so far of 1 / likelihood ratio
    # Always-valid confidence interval for the difference (a confidence sequence): holds at
    # every look at once with probability >= 1 - alpha. None until both arms have runs.
    interval: tuple[float, float] | None

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome.value,
            "current": {"runs": self.current_runs, "success_rate": self.current_rate},
            "candidate": {"runs": self.candidate_runs, "success_rate": self.candidate_rate},
            "difference": self.difference,
            "likelihood_ratio": self.likelihood_ratio,
            "threshold": self.threshold,
            "p_value": self.p_value,
            "interval": list(self.interval) if self.interval is not None else None,
            "test": "mixture SPRT for two proportions (always valid)",
        }


def mixture_likelihood_ratio(*, difference: float, variance: float, mixture_sd: float) -> float:
    """Likelihood ratio of `difference` under Normal(0, mixture_sd^2) differences against none,
    when the observed difference is Normal(true difference, variance)."""
    if variance <= 0:
        return 1.0
    tau2 = mixture_sd * mixture_sd
    exponent = difference * difference * tau2 / (2 * variance * (variance + tau2))
    # exp overflows past ~709; any ratio that large is far beyond every threshold anyway.
    return math.sqrt(variance / (variance + tau2)) * math.exp(min(exponent, 700.0))


def interval_radius(*, variance: float, mixture_sd: float, alpha: float) -> float:
    """Half-width of the always-valid interval: the differences whose mixture ratio stays
    below 1/alpha (Johari et al. section 4, inverted)."""
    tau2 = mixture_sd * mixture_sd
    return math.sqrt(variance * (variance + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance)))


def _validate(*, current_runs: int, current_successes: int, candidate_runs: int, candidate_successes: int,
              alpha: float, min_runs_per_arm: int, max_runs_per_arm: int, mixture_sd: float,
              previous_p_value: float, steps: Sequence[ArmCounts]) -> None:
    totals = ArmCounts(current_runs=current_runs, current_successes=current_successes, candidate_runs=candidate_runs,
                       candidate_successes=candidate_successes)
    for counts in (totals, *steps):
        for name, runs, successes in (("current", counts.current_runs, counts.current_successes),
                                      ("candidate", counts.candidate_runs, counts.candidate_successes)):
            if runs < 0 or not 0 <= successes <= runs:
                raise ValueError(f"{name}: need 0 <= successes <= runs, got {successes} of {runs}.")
    if steps and totals != total_counts(steps):
        raise ValueError("The steps' counts must add up to the totals.")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1.")
    if not 1 <= min_runs_per_arm <= max_runs_per_arm:
        raise ValueError("need 1 <= min_runs_per_arm <= max_runs_per_arm.")
    if mixture_sd <= 0:
        raise ValueError("mixture_sd must be positive.")
    if not 0 < previous_p_value <= 1:
        raise ValueError("previous_p_value must be in (0, 1].")


def sequential_decision(
    *,
    current_runs: int,
    current_successes: int,
    candidate_runs: int,
    candidate_successes: int,
    alpha: float = DEFAULT_ALPHA,
    min_runs_per_arm: int = DEFAULT_MIN_RUNS_PER_ARM,
    max_runs_per_arm: int = DEFAULT_MAX_RUNS_PER_ARM,
    mixture_sd: float = DEFAULT_MIXTURE_SD,
    previous_p_value: float = 1.0,
    steps: Sequence[ArmCounts] = (),
) -> SequentialDecision:
    """Decide an experiment from the cumulative counts of both arms (see the module docstring).

    - `promote` / `rollback`: both arms have `min_runs_per_arm` runs and the mixture
      likelihood ratio is >= 1/alpha; the sign of the difference says which.
    - `inconclusive`: no such evidence and both arms have `max_runs_per_arm` runs.
    - `continue`: otherwise.

    `previous_p_value` is the p-value the previous look returned (1.0 at the first look); it
    only makes the reported p-value the running minimum. The decision itself needs no state:
    an experiment stops at its first `promote` or `rollback`.

    `steps`: the same counts split by the steps of a ramp (each step's runs at one traffic
    share; they must add up to the totals). The difference, the statistic and the interval are
    then estimated per step and combined (`stratified_estimate`); the totals still decide the
    minimum and maximum sample. Without steps the totals are one step.
    """
    _validate(current_runs=current_runs, current_successes=current_successes, candidate_runs=candidate_runs,
              candidate_successes=candidate_successes, alpha=alpha, min_runs_per_arm=min_runs_per_arm,
              max_runs_per_arm=max_runs_per_arm, mixture_sd=mixture_sd, previous_p_value=previous_p_value,
              steps=steps)
    current_rate = current_successes / current_runs if current_runs else None
    candidate_rate = candidate_successes / candidate_runs if candidate_runs else None
    difference = interval = None
    ratio = 1.0
    estimate = stratified_estimate(steps or [ArmCounts(current_runs, current_successes, candidate_runs,
                                                       candidate_successes)])
    if estimate is not None:
        difference = estimate.difference
        # The test uses the pooled variance, right under "no difference" (where the error rate
        # is at stake); the interval needs each arm's own.
        ratio = mixture_likelihood_ratio(difference=difference, variance=estimate.null_variance,
                                         mixture_sd=mixture_sd)
        radius = interval_radius(variance=estimate.variance, mixture_sd=mixture_sd, alpha=alpha)
        interval = (max(-1.0, difference - radius), min(1.0, difference + radius))
    threshold = 1 / alpha
    enough = min(current_runs, candidate_runs) >= min_runs_per_arm
    if enough and ratio >= threshold and difference is not None and difference != 0:
        outcome = Outcome.PROMOTE if difference > 0 else Outcome.ROLLBACK
    elif min(current_runs, candidate_runs) >= max_runs_per_arm:
        outcome = Outcome.INCONCLUSIVE
    else:
        outcome = Outcome.CONTINUE
    # Before the minimum sample no look counts towards the p-value either.
    p_value = min(previous_p_value, 1 / ratio) if enough else previous_p_value
    return SequentialDecision(
        outcome=outcome, current_runs=current_runs, candidate_runs=candidate_runs, current_rate=current_rate,
        candidate_rate=candidate_rate, difference=difference, likelihood_ratio=ratio, threshold=threshold,
        p_value=p_value, interval=interval,
    )
