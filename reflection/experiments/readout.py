"""What an experiment's last look left in `Experiment.detail`, read out once for the admin pages
(`rendering`) and the API (`apis`): each arm with its 95 % interval, each ramp step's counts."""
from __future__ import annotations

import math
from typing import Any

from reflection.models import Experiment

Z_95 = 1.959964


def wilson_interval(successes: int, runs: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a success rate (95 % by default); None without runs. Unlike
    rate ± z·se it stays inside 0..1 and is not of width zero at 0 % or 100 %."""
    if runs <= 0:
        return None
    rate = successes / runs
    denominator = 1 + z * z / runs
    centre = (rate + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / runs + z * z / (4 * runs * runs)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def experiment_arms(experiment: Experiment) -> list[dict[str, Any]]:
    """Current, then candidate: version, share of keys, runs, successes, success rate and its
    interval (None without runs)."""
    detail = experiment.detail or {}
    arms = []
    for arm, version, share in (("current", experiment.base_version, 1 - experiment.candidate_share),
                                ("candidate", experiment.candidate_version, experiment.candidate_share)):
        counts = detail.get(arm)
        if not isinstance(counts, dict):
            counts = {}
        runs, successes = int(counts.get("runs") or 0), int(counts.get("successes") or 0)
        interval = wilson_interval(successes, runs)
        arms.append({"arm": arm, "version": version, "share": share, "runs": runs, "successes": successes,
                     "success_rate": successes / runs if runs else None, "interval": list(interval) if interval else None})
    return arms


def looked_step_counts(experiment: Experiment) -> dict[Any, dict[str, dict[str, int] | None]]:
    """Each ramp step's runs and successes per arm at the last look, by step number (an arm
    without counts in a step: None)."""
    rows = [row for row in (experiment.detail or {}).get("steps") or [] if isinstance(row, dict)]
    return {row.get("number"): {arm: _counts(row, arm) for arm in ("current", "candidate")} for row in rows}


def _counts(row: dict, arm: str) -> dict[str, int] | None:
    runs, successes = row.get(f"{arm}_runs"), row.get(f"{arm}_successes")
    return {"runs": runs, "successes": successes} if isinstance(runs, int) and isinstance(successes, int) else None
