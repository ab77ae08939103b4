"""Which runs an analysis judges: those of the version the case serves now (`Case.version`).

The runs of earlier versions, and of an experiment's candidate (the experiment judges those),
are only compared: `compare_versions` lists runs and success rate of the newest few versions.
Raw logs come grouped by case and version from `queries`. A roll-up day keeps runs and
successes per version (`DailyCaseRollup.versions`), and, on a day that mixed versions, each
version's latency and errors as well (`reflection.analysis.retention`), so the current
version's share of any day is exact; `rollup_share` reads it.
"""
from __future__ import annotations

from dataclasses import dataclass

from reflection.analysis.types import ErrorTally, VersionFigures
from reflection.models import DailyCaseRollup

# Versions listed in an analysis's comparison, newest first, the current one always among them.
VERSIONS_COMPARED = 5


@dataclass(frozen=True)
class RollupShare:
    """One version's part of a roll-up day. The latency and error fields are None on a day that
    mixed versions before roll-ups split them (issue #15): runs and successes are known, the
    rest is not, and the analysis leaves it out (docs/reflection.md)."""

    runs: int
    successes: int
    latency_sum: float | None
    histogram: dict[str, int] | None
    errors: dict[str, ErrorTally] | None


def rollup_share(rollup: DailyCaseRollup, version: int | None) -> RollupShare | None:
    """The runs of `version` in a roll-up day, or None when it had none (or the day was rolled
    up before versions were counted: no version can claim its runs)."""
    entry = rollup.versions.get(str(version)) if version is not None else None
    if not entry or not entry.get("runs"):
        return None
    runs, successes = int(entry["runs"]), int(entry["successes"])
    if "latency_sum_ms" in entry:
        return RollupShare(runs, successes, float(entry["latency_sum_ms"]), entry.get("latency_histogram", {}),
                           entry.get("errors", {}))
    if runs == rollup.runs:  # the whole day ran this version: the day's figures are its figures
        return RollupShare(runs, successes, rollup.latency_sum_ms, rollup.latency_histogram, rollup.errors)
    return RollupShare(runs, successes, None, None, None)


def rollup_version_counts(rollup: DailyCaseRollup) -> dict[int | None, tuple[int, int]]:
    """Runs and successes of each version in a roll-up day; runs no version claims (days rolled
    up before versions were counted) under None."""
    counts: dict[int | None, tuple[int, int]] = {}
    claimed = 0
    for version, entry in rollup.versions.items():
        runs = int(entry.get("runs", 0))
        counts[int(version)] = (runs, int(entry.get("successes", 0)))
        claimed += runs
    if rollup.runs > claimed:
        counts[None] = (rollup.runs - claimed, max(0, rollup.successes - sum(s for _, s in counts.values())))
    return counts


def compare_versions(*, current: int | None, counts: dict[int | None, tuple[int, int]]) -> list[VersionFigures]:
    """The newest `VERSIONS_COMPARED` versions with runs in the window, the current one always
    listed (with no runs too), newest first; runs of no known version last, when there are any."""
    known = sorted({version for version, (runs, _) in counts.items() if version is not None and runs}
                   | ({current} if current is not None else set()), reverse=True)
    shown: list[int | None] = list(known[:VERSIONS_COMPARED])
    if current is not None and current not in shown:
        shown = [*shown[:VERSIONS_COMPARED - 1], current]
    if counts.get(None, (0, 0))[0]:
        shown.append(None)
    rows: list[VersionFigures] = []
    for version in shown:
        runs, successes = counts.get(version, (0, 0))
        rows.append({"version": version, "runs": runs, "successes": successes,
                     "success_rate": round(successes / runs, 4) if runs else None, "current": version is not None and version == current})
    return rows
