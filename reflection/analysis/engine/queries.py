"""The SQL behind an analysis: a few set-based aggregates for any number of cases at once.

One statement per concern (figures, errors, percentiles or histograms), each grouped by case
and case version (an analysis judges the current version and compares the others: the engine
picks), so analysing one case and analysing ten thousand run the same queries. PostgreSQL computes
percentiles with `percentile_cont`; SQLite picks the rows around each percentile rank with
window functions. Errors group by the template ingestion stored (computed here for older logs).
Ages come from `date_part('epoch', ...)` on PostgreSQL: `extract(epoch ...)` is `numeric`, slow.
"""
from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models.expressions import RawSQL

from core.pg_arrays import uuid_array
from reflection.analysis.engine import stats
from reflection.analysis.types import CommonError, ErrorTally, TemplateCount
from reflection.models import ExecutionLog

LOG_TABLE = ExecutionLog._meta.db_table
PERCENTILES = (0.5, 0.95, 0.99)
# A case and one of its versions: every result below is keyed so. None is the version of a log
# stored without one, which ingestion never does for a case's log (docs/reflection.md).
VersionKey = tuple[uuid.UUID, int | None]


@dataclass
class Bounds:
    """Every time bound of one analysis, shared by all the cases of a batch."""

    now: datetime
    start: datetime  # window start
    recent_start: datetime  # last 24 h
    baseline_start: datetime  # the 7 days before the last 24 h
    snapshot_at: datetime | None  # only logs ingested up to here (a run's snapshot)
    half_life_days: float


@dataclass
class Figures:
    runs: int = 0
    successes: int = 0
    weight_sum: float = 0.0
    weighted_successes: float = 0.0
    latency_sum: float = 0.0
    # Runs whose latency is known: all raw logs, not the runs of a roll-up day that mixed
    # versions before roll-ups kept latency per version (`engine.versions`).
    latency_runs: int = 0
    percentiles: dict[float, float | None] = field(default_factory=dict)
    recent_runs: int = 0
    recent_successes: int = 0
    recent_latency_sum: float = 0.0
    recent_latency_squares: float = 0.0
    baseline_runs: int = 0
    baseline_successes: int = 0
    baseline_latency_sum: float = 0.0
    baseline_latency_squares: float = 0.0


def _is_pg() -> bool:
    return connection.vendor == "postgresql"


def _param(moment: datetime | None):
    return connection.ops.adapt_datetimefield_value(moment)


def ids_lookup(field: str, ids: list[uuid.UUID]) -> dict:
    """`{field}__in=ids` for the thousands of ids of a batch. On PostgreSQL the ids go as one
    array: Django prepares each UUID of an IN-list on its own (~30 ms per 2,000 ids)."""
    if _is_pg():
        return {f"{field}__in": RawSQL("SELECT unnest(%s::uuid[])", [uuid_array(ids)])}
    return {f"{field}__in": ids}


def _case_filter(case_ids: list[uuid.UUID] | None) -> tuple[str, list]:
    """Rows of the given cases; None takes every case's (no per-row lookup in a long list)."""
    if case_ids is None:
        return "case_id IS NOT NULL", []
    if _is_pg():
        return "case_id = ANY(%s::uuid[])", [uuid_array(case_ids)]
    marks = ", ".join(["%s"] * len(case_ids))
    return f"case_id IN ({marks})", [case_id.hex for case_id in case_ids]


def _window_filter(case_ids: list[uuid.UUID] | None, bounds: Bounds, *, failures_only: bool = False,
                   start: datetime | None = None) -> tuple[str, list]:
    where, params = _case_filter(case_ids)
    clauses = [where, "created_at >= %s"]
    params.append(_param(start or bounds.start))
    if bounds.snapshot_at is not None:
        # A filter, never an index condition: on a fresh backlog every row passes it, and the
        # planner would otherwise walk the ingested_at index over the whole table.
        clauses.append("ingested_at + INTERVAL '0 seconds' <= %s" if _is_pg() else "ingested_at <= %s")
        params.append(_param(bounds.snapshot_at))
    if failures_only:
        clauses.append("NOT success" if _is_pg() else "success = 0")
    return " AND ".join(clauses), params


def use_batch_memory() -> None:
    """Inside the caller's transaction: sort a chunk's ~200,000 rows in memory (the default
    4 MB spills them to disk, ~30 % slower). No-op on SQLite."""
    if _is_pg():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '64MB'")


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _anomaly_scan(bounds: Bounds) -> tuple[datetime, str, list]:
    """Anomalies compare the last 24 h with the 7 days before, whatever the window: a window
    shorter than 8 days scans back to the baseline's start, and `inw` (true inside the window)
    keeps the window's totals to the window. Returns (scan start, inw, params)."""
    if bounds.baseline_start >= bounds.start:
        return bounds.start, "1 = 1", []
    return bounds.baseline_start, "created_at >= %s", [_param(bounds.start)]


def raw_figures(case_ids: list[uuid.UUID] | None, bounds: Bounds) -> dict[VersionKey, Figures]:
    """Counts, decayed weights, latency sums and the recent/baseline split, per case and version
    (of every case with logs for None). Grouping by version too costs next to nothing: a case's
    rows are aggregated either way, and most cases have one version in a window."""
    scan_start, inw, inw_params = _anomaly_scan(bounds)
    where, where_params = _window_filter(case_ids, bounds, start=scan_start)
    if _is_pg():
        age_days = "greatest(0.0, date_part('epoch', %s::timestamptz - created_at) / 86400.0)"
        ok = "success"
    else:
        age_days = "max(0.0, julianday(%s) - julianday(created_at))"
        ok = "success = 1"
    # FILTER rather than SUM(CASE ...): half the cost per row on PostgreSQL. The decay weight
    # 0.5 ** (age / half-life) is written exp(-ln 2 / half-life * age): power() costs ~5x exp().
    # Its two sums split successes from failures, so each row computes its weight once (an
    # aggregate's argument is evaluated only when its FILTER passes); the total is their sum.
    recent = "created_at >= %s"
    baseline = "created_at >= %s AND created_at < %s"
    # Windows of 8 days or more hold the whole scan: no filter on the window's aggregates.
    whole_scan = not inw_params
    in_window = "" if whole_scan else " FILTER (WHERE inw)"
    ok_in_window = f" FILTER (WHERE {ok})" if whole_scan else f" FILTER (WHERE inw AND {ok})"
    failed_in_window = f" FILTER (WHERE NOT ({ok}))" if whole_scan else f" FILTER (WHERE inw AND NOT ({ok}))"
    aggregates = [
        f"COUNT(*){in_window}",
        f"COUNT(*){ok_in_window}",
        f"SUM(w){failed_in_window}",
        f"SUM(w){ok_in_window}",
        f"SUM(ms){in_window}",
        f"COUNT(*) FILTER (WHERE {recent})",
        f"COUNT(*) FILTER (WHERE {recent} AND {ok})",
        f"SUM(ms) FILTER (WHERE {recent})",
        f"SUM(ms * ms) FILTER (WHERE {recent})",
        f"COUNT(*) FILTER (WHERE {baseline})",
        f"COUNT(*) FILTER (WHERE {baseline} AND {ok})",
        f"SUM(ms) FILTER (WHERE {baseline})",
        f"SUM(ms * ms) FILTER (WHERE {baseline})",
    ]
    outer = [f"c{i}" for i in range(len(aggregates))]
    percentiles = ""
    if _is_pg():
        # Exact percentiles: each case's latencies gathered unsorted, then `percentile_cont` over
        # that one array. No aggregate here needs sorted input, so PostgreSQL groups by hashing
        # and can split the scan over parallel workers (array_agg has a combine function); a
        # single sort of every latency by case, as `array_agg(... ORDER BY ...)` needs, cost
        # ~1 s more over 1,000,000 logs and ran on one core.
        aggregates.append(f"array_agg(execution_time_ms){in_window}")
        outer.append("p.v")
        percentiles = (
            f", LATERAL (SELECT percentile_cont(ARRAY{list(PERCENTILES)}) WITHIN GROUP (ORDER BY x) AS v "
            f"FROM unnest(c{len(aggregates) - 1}) AS x) AS p"
        )
    sql = f"""
        SELECT case_id, case_version, {", ".join(outer)} FROM (
            SELECT case_id, case_version, {", ".join(f"{a} AS c{i}" for i, a in enumerate(aggregates))}
            FROM (
                SELECT case_id, case_version, success, created_at, execution_time_ms,
                       CAST(execution_time_ms AS {'float8' if _is_pg() else 'REAL'}) AS ms,
                       exp({age_days} * %s) AS w, {inw} AS inw
                FROM {LOG_TABLE}
                WHERE {where}
            ) AS logs
            GROUP BY case_id, case_version
        ) AS figures{percentiles}
    """
    recent_p = [_param(bounds.recent_start)]
    baseline_p = [_param(bounds.baseline_start), _param(bounds.recent_start)]
    params = [
        *recent_p, *recent_p, *recent_p, *recent_p,
        *baseline_p, *baseline_p, *baseline_p, *baseline_p,
        _param(bounds.now), -math.log(2) / bounds.half_life_days, *inw_params,
        *where_params,
    ]
    result: dict[VersionKey, Figures] = {}
    pg = _is_pg()  # once: `connection.vendor` costs ~40 µs through Django's connection proxy
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for case_id, version, *row in cursor.fetchall():
            figures = Figures(
                runs=int(row[0]),
                successes=int(row[1] or 0),
                weight_sum=float(row[2] or 0) + float(row[3] or 0),
                weighted_successes=float(row[3] or 0),
                latency_sum=float(row[4] or 0),
                latency_runs=int(row[0]),
                recent_runs=int(row[5] or 0),
                recent_successes=int(row[6] or 0),
                recent_latency_sum=float(row[7] or 0),
                recent_latency_squares=float(row[8] or 0),
                baseline_runs=int(row[9] or 0),
                baseline_successes=int(row[10] or 0),
                baseline_latency_sum=float(row[11] or 0),
                baseline_latency_squares=float(row[12] or 0),
            )
            if pg:  # no array when the window holds none of the case's logs
                figures.percentiles = dict(zip(PERCENTILES, row[13] or (None,) * len(PERCENTILES), strict=False))
            result[(_as_uuid(case_id), version)] = figures
    if not pg and result:
        for key, found in _sqlite_percentiles(list({case_id for case_id, _ in result}), bounds).items():
            result[key].percentiles = found
    return result


def _sqlite_percentiles(case_ids: list[uuid.UUID], bounds: Bounds) -> dict[VersionKey, dict[float, float | None]]:
    """`percentile_cont` without it: rank rows per case, keep only those around each rank."""
    where, params = _window_filter(case_ids, bounds)
    picks = " OR ".join(
        f"rn = CAST({p!r} * (cnt - 1) AS INTEGER) + 1 OR rn = CAST({p!r} * (cnt - 1) AS INTEGER) + 2"
        for p in PERCENTILES
    )
    sql = f"""
        SELECT case_id, case_version, rn, cnt, execution_time_ms FROM (
            SELECT case_id, case_version, execution_time_ms,
                   ROW_NUMBER() OVER (PARTITION BY case_id, case_version ORDER BY execution_time_ms) AS rn,
                   COUNT(*) OVER (PARTITION BY case_id, case_version) AS cnt
            FROM {LOG_TABLE} WHERE {where}
        ) AS ranked
        WHERE {picks}
    """
    rows: dict[VersionKey, dict[int, float]] = defaultdict(dict)
    counts: dict[VersionKey, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for case_id, version, rn, cnt, ms in cursor.fetchall():
            key = (_as_uuid(case_id), version)
            rows[key][int(rn)] = float(ms)
            counts[key] = int(cnt)
    result: dict[VersionKey, dict[float, float | None]] = {}
    for key, values in rows.items():
        percentiles: dict[float, float | None] = {}
        for p in PERCENTILES:
            lower, upper, weight = stats.exact_percentile_positions(counts[key], p)
            percentiles[p] = values[lower] + (values[upper] - values[lower]) * weight
        result[key] = percentiles
    return result


def raw_histograms(case_ids: list[uuid.UUID], bounds: Bounds) -> dict[VersionKey, dict[int, int]]:
    """Raw latencies in the roll-up's buckets, to merge with roll-ups for percentiles."""
    where, params = _window_filter(case_ids, bounds)
    bucket = stats.histogram_bucket_sql("CAST(execution_time_ms AS {})".format("float8" if _is_pg() else "REAL"))
    sql = (f"SELECT case_id, case_version, {bucket} AS b, COUNT(*) FROM {LOG_TABLE} WHERE {where} "
           "GROUP BY case_id, case_version, b")
    result: dict[VersionKey, dict[int, int]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for case_id, version, b, count in cursor.fetchall():
            result[(_as_uuid(case_id), version)][int(b)] = int(count)
    return result


def raw_errors(case_ids: list[uuid.UUID], bounds: Bounds) -> dict[VersionKey, dict[str, ErrorTally]]:
    """Failures per case and version, error type and message template, with one example message each.

    Returns {(case_id, version): {error_type: {"count", "example", "templates": {template: count}}}},
    the same shape as `DailyCaseRollup.errors`, so that roll-ups merge in directly.
    """
    where, params = _window_filter(case_ids, bounds, failures_only=True)
    result: dict[VersionKey, dict[str, ErrorTally]] = defaultdict(dict)
    with connection.cursor() as cursor:
        if _is_pg():
            cursor.execute(
                f"""SELECT case_id, case_version, error_type, {stats.stored_template_sql()} AS template,
                           COUNT(*), min(error_message COLLATE "C")
                    FROM {LOG_TABLE} WHERE {where} GROUP BY case_id, case_version, error_type, template""",
                params,
            )
            rows = cursor.fetchall()
        else:
            # Group identical messages in SQL; only those stored without a template (before the
            # column existed) are templated here.
            cursor.execute(
                f"""SELECT case_id, case_version, error_type, error_template, error_message, COUNT(*)
                    FROM {LOG_TABLE} WHERE {where}
                    GROUP BY case_id, case_version, error_type, error_template, error_message""",
                params,
            )
            rows = [
                (case_id, version, kind, stored if stored is not None else stats.message_template(message), count,
                 message)
                for case_id, version, kind, stored, message, count in cursor.fetchall()
            ]
    for case_id, version, kind, template, count, example in rows:
        merge_error(result[(_as_uuid(case_id), version)], kind or "unknown", template, int(count), example)
    return result


def ranked_errors(case_ids: list[uuid.UUID] | None, bounds: Bounds, *,
                  top_templates: int) -> dict[VersionKey, list[CommonError]]:
    """PostgreSQL only: each case version's `common_errors` ranked in SQL, percentages left to
    fill (every case with failures for None).

    The ranking of `raw_errors` merged and ranked in Python (which took ~0.9 s for 10,000
    cases): error types by count then name, each with its top templates by count then text and
    its smallest non-empty message as example. SQL sorts every group into that order at once
    (aggregates with ORDER BY would sort each case apart, slower still); Python only reads the
    rows in turn. Texts compare in code-point order (COLLATE "C", as Python compares str),
    whatever the database's collation.
    """
    where, params = _window_filter(case_ids, bounds, failures_only=True)
    sql = f"""
        SELECT case_id::text, case_version, kind, template, n,
               (SUM(n) OVER per_kind)::bigint AS kind_n,
               COALESCE(min(example) OVER per_kind, '') AS kind_example
        FROM (
            SELECT case_id, case_version, COALESCE(NULLIF(error_type, ''), 'unknown') COLLATE "C" AS kind,
                   {stats.stored_template_sql()} COLLATE "C" AS template, COUNT(*) AS n,
                   min(error_message COLLATE "C") FILTER (WHERE error_message <> '') AS example
            FROM {LOG_TABLE} WHERE {where} GROUP BY 1, 2, 3, 4
        ) AS groups
        WINDOW per_kind AS (PARTITION BY case_id, case_version, kind)
        ORDER BY groups.case_id, groups.case_version, kind_n DESC, kind, n DESC, template
    """
    result: dict[VersionKey, list[CommonError]] = {}
    group_key: tuple[str, int | None] | None = None
    kind_key = None
    rows: list[CommonError] = []
    templates: list[TemplateCount] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for case_id, version, kind, template, count, kind_count, example in cursor.fetchall():
            if (case_id, version) != group_key:
                group_key, kind_key, rows = (case_id, version), None, []
                result[(uuid.UUID(case_id), version)] = rows
            if kind != kind_key:
                kind_key, templates = kind, []
                rows.append({"error_type": kind, "count": kind_count, "percentage": None, "example": example,
                             "templates": templates})
            if len(templates) < top_templates:
                templates.append({"template": template, "count": count})
    return result


def merge_error(errors: dict[str, ErrorTally], kind: str, template: str, count: int, example: str) -> None:
    entry = errors.get(kind)
    if entry is None:
        entry = errors[kind] = {"count": 0, "example": example, "templates": {}}
    entry["count"] += count
    if example and (not entry["example"] or example < entry["example"]):
        # The smallest message is a stable choice: the same data gives the same example.
        entry["example"] = example
    entry["templates"][template] = entry["templates"].get(template, 0) + count
