"""The ramp rule: when a canary's share moves to the next step of its schedule (pure).

A step advances at a look once its candidate arm has `min_runs` runs in that step and the
always-valid interval of the difference (candidate - current) rules out a regression larger
than `margin`: its lower end is at least `-margin`. The interval holds at every look at once
with probability 1 - alpha, so a candidate worse by more than the margin is ramped up with
probability at most alpha. A significant regression rolls back at any step (the decision rule
is evaluated first). The share changing with the data does not bias the decision: counts are
kept per step and compared within each step (`sequential.stratified_estimate`).
"""
from __future__ import annotations

from collections.abc import Sequence


def next_share(*, ramp: Sequence[float], share: float) -> float | None:
    """The first share of the ramp above `share`; None at or past its last step."""
    return next((step for step in ramp if step > share), None)


def ramp_advance(*, ramp: Sequence[float], share: float, held: bool, step_candidate_runs: int,
                 interval: tuple[float, float] | None, min_runs: int, margin: float) -> float | None:
    """The share to serve from this look on, or None to stay at `share`."""
    following = next_share(ramp=ramp, share=share)
    if held or following is None or interval is None or step_candidate_runs < min_runs:
        return None
    return following if interval[0] >= -margin else None
