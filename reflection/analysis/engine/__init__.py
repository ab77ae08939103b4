"""The reflection engine: the analysis of SPEC section 4 for one case or many at once.

`analyze_case` answers the API; `analyze_cases` serves batch runs with the same queries over
many cases. Raw logs are aggregated in SQL (`queries`); days older than retention come from
`DailyCaseRollup` rows and are merged in, so nothing a user saw disappears. The figures are
those of the case's current version; other versions are compared (`versions`).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from casebank.models import Case
from core.errors import InvalidInput, NotFound
from reflection.analysis.engine import stats
from reflection.analysis.engine.queries import (
    PERCENTILES,
    Bounds,
    Figures,
    VersionKey,
    ids_lookup,
    merge_error,
    ranked_errors,
    raw_errors,
    raw_figures,
    raw_histograms,
    use_batch_memory,
)
from reflection.analysis.engine.versions import compare_versions, rollup_share, rollup_version_counts
from reflection.analysis.types import CaseAnalysisData, CommonError, ErrorTally, LatencyMs
from reflection.models import DailyCaseRollup

MIN_WINDOW_DAYS = 1
MAX_WINDOW_DAYS = 365
MIN_CONFIDENT_RUNS = 100
SLOW_P95_MS = 2_000
TOP_TEMPLATES = 5
# Cases per statement: keeps IN-lists and ANY arrays moderate, and memory flat in big runs.
CHUNK = 2_000
# On PostgreSQL a batch takes more: cases' logs are interleaved all through the table, so each
# statement reads nearly the whole heap whatever its share of cases, and five chunks of 2,000
# cost ~1.3 s more than one of 10,000 over 1,000,000 logs (docs/reflection.md).
PG_CHUNK = 10_000
T = TypeVar("T")


def chunk_size() -> int:
    return PG_CHUNK if connection.vendor == "postgresql" else CHUNK


def half_life_days() -> float:
    return float(settings.REFLECTION_HALF_LIFE_DAYS)


def validate_window(window_days: object) -> int:
    if isinstance(window_days, bool) or not isinstance(window_days, int) or not (
        MIN_WINDOW_DAYS <= window_days <= MAX_WINDOW_DAYS
    ):
        raise InvalidInput(
            f"window_days must be a whole number from {MIN_WINDOW_DAYS} to {MAX_WINDOW_DAYS}.",
            errors={"window_days": [f"Between {MIN_WINDOW_DAYS} and {MAX_WINDOW_DAYS}."]},
        )
    return window_days


# Retention never rolls up the last 30 days (retention.MIN_RETENTION_DAYS; not imported: the
# retention module imports this package).
ROLLUP_FREE_DAYS = 30


def window_start(*, window_days: int, now: datetime) -> datetime:
    """Where a window starts. Past 30 days it may reach into a day that is, or will be, one
    summary row per case, which counts whole or not at all: so the window then starts at that
    day's UTC midnight, for raw logs and roll-ups alike, and its figures do not change when
    `purge_logs` rolls the day up (issue #15: 1551 runs before, 1565 after)."""
    start = now - timedelta(days=window_days)
    if window_days > ROLLUP_FREE_DAYS:
        start = datetime.combine(start.astimezone(dt_timezone.utc).date(), time.min, tzinfo=dt_timezone.utc)
    return start


def make_bounds(*, window_days: int, now: datetime | None, snapshot_at: datetime | None = None) -> Bounds:
    now = now or timezone.now()
    return Bounds(
        now=now,
        start=window_start(window_days=window_days, now=now),
        recent_start=now - timedelta(hours=24),
        baseline_start=now - timedelta(days=8),
        snapshot_at=snapshot_at,
        half_life_days=half_life_days(),
    )


def analyze_case(*, case_id: uuid.UUID | str, window_days: int = 30, now: datetime | None = None,
                 snapshot_at: datetime | None = None) -> CaseAnalysisData:
    """The analysis of one case; NotFound for an unknown case, InvalidInput for a bad window."""
    validate_window(window_days)
    try:
        key = case_id if isinstance(case_id, uuid.UUID) else uuid.UUID(str(case_id))
    except ValueError:
        raise NotFound(f"No case with id {case_id}.") from None
    if not Case.objects.filter(pk=key).exists():
        raise NotFound(f"No case with id {key}.")
    return analyze_cases(case_ids=[key], window_days=window_days, now=now, snapshot_at=snapshot_at)[key]


def analyze_cases(*, case_ids: Iterable[uuid.UUID], window_days: int = 30, now: datetime | None = None,
                  snapshot_at: datetime | None = None) -> dict[uuid.UUID, CaseAnalysisData]:
    """Analyses of many cases with a handful of grouped queries per chunk of cases."""
    return dict(analyses_as_built(case_ids=case_ids, window_days=window_days, now=now, snapshot_at=snapshot_at))


def analyses_as_built(*, case_ids: Iterable[uuid.UUID], window_days: int = 30, now: datetime | None = None,
                      snapshot_at: datetime | None = None,
                      every_case_with_logs: bool = False) -> Iterator[tuple[uuid.UUID, CaseAnalysisData]]:
    """`analyze_cases` one case at a time: the queries run now, each analysis is built as the
    caller takes it, so a run can store one while Python builds the next.

    `every_case_with_logs`: the ids are (nearly) every case with logs up to the snapshot, as
    in a first run. When one statement would take them all anyway, PostgreSQL then scans with
    no case filter (~0.1 s less per 1,000,000 logs than looking each row's case up in the id
    list); rows of other cases are left out here."""
    validate_window(window_days)
    bounds = make_bounds(window_days=window_days, now=now, snapshot_at=snapshot_at)
    ids = list(dict.fromkeys(case_ids))
    whole = every_case_with_logs and connection.vendor == "postgresql" and len(ids) <= chunk_size()
    current = current_versions(ids)
    if _can_scan_in_parallel(len(ids)):
        # The error scan and its Python (grouping, ranking) run on a second connection in a
        # thread while this one waits on the figures scan, the longer of the two, which leaves
        # the interpreter free meanwhile.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reflection-scan") as pool:
            side = pool.submit(_on_own_connection, _scan_errors, ids, bounds, whole, current)
            with transaction.atomic():
                figures = _scan_figures(ids, bounds, whole)
            errors, rollups, histograms = side.result()
    else:
        with transaction.atomic():
            figures = _scan_figures(ids, bounds, whole)
            errors, rollups, histograms = _scan_errors(ids, bounds, whole, current)
    by_case: dict[uuid.UUID, dict[int | None, Figures]] = {}
    for (case_id, version), found in figures.items():
        by_case.setdefault(case_id, {})[version] = found
    return (
        (
            case_id,
            _analysis(
                case_id=case_id,
                window_days=window_days,
                bounds=bounds,
                version=current.get(case_id),
                by_version=by_case.get(case_id, {}),
                ranked_errors=errors.get((case_id, current.get(case_id)), []),
                rollups=rollups.get(case_id, []),
                raw_histogram=histograms.get((case_id, current.get(case_id)), {}),
            ),
        )
        for case_id in ids
    )


def current_versions(case_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The version each case serves now: the one its analysis judges."""
    versions: dict[uuid.UUID, int] = {}
    size = chunk_size()
    for offset in range(0, len(case_ids), size):
        versions.update(
            Case.objects.filter(**ids_lookup("pk", case_ids[offset:offset + size])).values_list("pk", "version")
        )
    return versions


def _can_scan_in_parallel(case_count: int) -> bool:
    """A second connection sees only committed rows, so never inside a caller's transaction
    (tests, `case_analysis_record`); SQLite gains nothing from a second connection."""
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and case_count >= settings.REFLECTION_PARALLEL_MIN_CASES
    )


def _on_own_connection(function: Callable[..., T], *args: Any) -> T:
    """Run in a worker thread, which gets its own connection from Django; close it after."""
    try:
        with transaction.atomic():
            return function(*args)
    finally:
        connections.close_all()


def _scan_figures(ids: list[uuid.UUID], bounds: Bounds, whole: bool) -> dict[VersionKey, Figures]:
    use_batch_memory()
    if whole:
        return raw_figures(None, bounds)
    figures: dict[VersionKey, Figures] = {}
    size = chunk_size()
    for offset in range(0, len(ids), size):
        figures.update(raw_figures(ids[offset:offset + size], bounds))
    return figures


def _scan_errors(ids: list[uuid.UUID], bounds: Bounds, whole: bool, current: dict[uuid.UUID, int]) -> tuple[
    dict[VersionKey, list[CommonError]], dict[uuid.UUID, list[DailyCaseRollup]], dict[VersionKey, dict[int, int]]
]:
    """Each case version's errors ranked for `common_errors` (the current version's with its
    roll-ups merged in), plus the roll-ups of days past retention and the raw histograms,
    which the figures need."""
    use_batch_memory()
    ranked: dict[VersionKey, list[CommonError]] = {}
    rollups: dict[uuid.UUID, list[DailyCaseRollup]] = {}
    histograms: dict[VersionKey, dict[int, int]] = {}
    size = chunk_size()
    for offset in range(0, len(ids), size):
        chunk = ids[offset:offset + size]
        chunk_rollups = _rollups(chunk, bounds)
        if chunk_rollups:
            rollups.update(chunk_rollups)
            histograms.update(raw_histograms(list(chunk_rollups), bounds))
        ranked.update(_ranked_errors(chunk, bounds, chunk_rollups, whole, current))
    return ranked, rollups, histograms


def _ranked_errors(case_ids: list[uuid.UUID], bounds: Bounds, rollups: dict[uuid.UUID, list[DailyCaseRollup]],
                   whole: bool, current: dict[uuid.UUID, int]) -> dict[VersionKey, list[CommonError]]:
    """PostgreSQL ranks the errors of cases with no roll-up in the window (of every case when
    `whole`), every version's; Python merges and ranks the current version's of the others
    (roll-ups hold counts per template, out of SQL's sight), and its ranking replaces any SQL
    gave them."""
    in_sql: list[uuid.UUID] | None
    if connection.vendor == "postgresql":
        in_sql = None if whole else [c for c in case_ids if c not in rollups]
        in_python = [c for c in case_ids if c in rollups]
    else:
        in_sql, in_python = [], case_ids
    ranked = ranked_errors(in_sql, bounds, top_templates=TOP_TEMPLATES) if in_sql is None or in_sql else {}
    errors = raw_errors(in_python, bounds) if in_python else {}
    for case_id in rollups:
        version = current.get(case_id)
        _merge_rollup_errors(errors.setdefault((case_id, version), {}), rollups[case_id], version)
    ranked.update(
        (key, _rank_errors(case_errors)) for key, case_errors in errors.items() if current.get(key[0]) == key[1]
    )
    return ranked


def _rollups(case_ids: list[uuid.UUID], bounds: Bounds) -> dict[uuid.UUID, list[DailyCaseRollup]]:
    rows: dict[uuid.UUID, list[DailyCaseRollup]] = {}
    # Days are whole: a window past 30 days starts at a midnight (`window_start`), so a roll-up
    # day is either wholly inside it or wholly outside.
    for rollup in DailyCaseRollup.objects.filter(**ids_lookup("case_id", case_ids), day__gte=bounds.start.date()):
        if rollup.case_id is not None:  # always, given the filter; the case-less rows have none
            rows.setdefault(rollup.case_id, []).append(rollup)
    return rows


def _merge_rollup_errors(errors: dict[str, ErrorTally], rollups: list[DailyCaseRollup], version: int | None) -> None:
    for rollup in rollups:
        share = rollup_share(rollup, version)
        for kind, entry in (share.errors or {} if share else {}).items():
            for template, count in entry.get("templates", {}).items():
                merge_error(errors, kind, template, int(count), entry.get("example", ""))


def _merge_rollup_figures(figures: Figures, rollups: list[DailyCaseRollup], bounds: Bounds,
                          version: int | None) -> dict[int, int]:
    """Add the roll-up days' runs of `version` to its figures; returns their latency histogram."""
    histogram: dict[int, int] = {}
    for rollup in rollups:
        share = rollup_share(rollup, version)
        if share is None:
            continue
        midday = datetime.combine(rollup.day, time(12), tzinfo=dt_timezone.utc)
        age_days = max(0.0, (bounds.now - midday).total_seconds() / 86400)
        weight = 0.5 ** (age_days / bounds.half_life_days)
        figures.runs += share.runs
        figures.successes += share.successes
        figures.weight_sum += weight * share.runs
        figures.weighted_successes += weight * share.successes
        if share.latency_sum is not None:
            figures.latency_sum += share.latency_sum
            figures.latency_runs += share.runs
        for bucket, count in (share.histogram or {}).items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + int(count)
    return histogram


def _version_counts(figures: dict[int | None, Figures], rollups: list[DailyCaseRollup]) -> dict[int | None, tuple[int, int]]:
    """Runs and successes per version in the window, raw and rolled up, for the comparison."""
    counts = {version: (found.runs, found.successes) for version, found in figures.items()}
    for rollup in rollups:
        for version, (runs, successes) in rollup_version_counts(rollup).items():
            before = counts.get(version, (0, 0))
            counts[version] = (before[0] + runs, before[1] + successes)
    return counts


def _analysis(*, case_id: uuid.UUID, window_days: int, bounds: Bounds, version: int | None,
              by_version: dict[int | None, Figures], ranked_errors: list[CommonError],
              rollups: list[DailyCaseRollup], raw_histogram: dict[int, int]) -> CaseAnalysisData:
    compared = compare_versions(current=version, counts=_version_counts(by_version, rollups))
    figures = by_version.get(version) or Figures()
    percentiles = figures.percentiles
    if rollups:
        histogram = _merge_rollup_figures(figures, rollups, bounds, version)
        for bucket, count in raw_histogram.items():
            histogram[bucket] = histogram.get(bucket, 0) + count
        percentiles = {p: stats.histogram_percentile(histogram, p) for p in PERCENTILES}
    total = figures.runs
    anomalies = [
        finding
        for finding in (
            stats.success_rate_drop(
                recent_runs=figures.recent_runs,
                recent_successes=figures.recent_successes,
                baseline_runs=figures.baseline_runs,
                baseline_successes=figures.baseline_successes,
            ),
            stats.latency_regression(
                recent_runs=figures.recent_runs,
                recent_sum=figures.recent_latency_sum,
                recent_squares=figures.recent_latency_squares,
                baseline_runs=figures.baseline_runs,
                baseline_sum=figures.baseline_latency_sum,
                baseline_squares=figures.baseline_latency_squares,
            ),
        )
        if finding is not None
    ]
    p95 = _ms(percentiles.get(0.95))
    latency: LatencyMs = {
        "mean": _ms(figures.latency_sum / figures.latency_runs) if figures.latency_runs else None,
        "p50": _ms(percentiles.get(0.5)),
        "p95": p95,
        "p99": _ms(percentiles.get(0.99)),
    }
    return {
        "case_id": str(case_id),
        "window_days": window_days,
        "case_version": version,
        "total_executions": total,
        "successes": figures.successes,
        "success_rate": round(figures.successes / total, 4) if total else None,
        "weighted_success_rate": (
            round(figures.weighted_successes / figures.weight_sum, 4) if figures.weight_sum > 0 else None
        ),
        "reuse_helped": round(figures.weighted_successes, 3),
        "reuse_harmed": round(max(figures.weight_sum - figures.weighted_successes, 0.0), 3),
        "common_errors": _with_percentages(ranked_errors, total),
        "latency_ms": latency,
        "slow": p95 is not None and p95 > SLOW_P95_MS,
        "anomalies": anomalies,
        "confidence": "ok" if total >= MIN_CONFIDENT_RUNS else "insufficient",
        "versions": compared,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _most_frequent_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _rank_errors(errors: dict[str, ErrorTally]) -> list[CommonError]:
    """`common_errors` but the percentages, which need the case's total from the figures."""
    rows: list[CommonError] = []
    for kind, entry in errors.items():
        counts = entry["templates"].items()
        # most error types have one template: no sort (10,000 cases a run)
        templates = sorted(counts, key=_most_frequent_first) if len(counts) > 1 else list(counts)
        rows.append(
            {
                "error_type": kind,
                "count": entry["count"],
                "percentage": None,
                "example": entry["example"],
                "templates": [{"template": t, "count": n} for t, n in templates[:TOP_TEMPLATES]],
            }
        )
    rows.sort(key=lambda row: (-row["count"], row["error_type"]))
    return rows


def _with_percentages(rows: list[CommonError], total: int) -> list[CommonError]:
    for row in rows:
        row["percentage"] = round(100 * row["count"] / total, 1) if total else 0.0
    return rows
