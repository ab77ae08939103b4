"""Pure statistics of the reflection engine: no database here, so each piece is testable alone.

Message templates, the log-scale latency histogram of the daily roll-ups, percentiles from
sorted samples or a histogram, and the two one-sided tests behind `anomalies`.
"""
from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache

# --- message templates ------------------------------------------------------------------

# (pattern, replacement), applied in order. Written in the subset of regular expressions that
# Python `re` and PostgreSQL read alike (no \b, \d; lookarounds of fixed width, which both
# have: PostgreSQL since 9.6) so that PostgreSQL can group by the same template in SQL that
# SQLite gets from `message_template` in Python.
_NOT_AFTER_WORD = "(?<![A-Za-z0-9_])"
TEMPLATE_RULES: tuple[tuple[str, str], ...] = (
    # A quote that follows a letter is an apostrophe ("Couldn't"), not the start of a value.
    (_NOT_AFTER_WORD + "'[^']*'", "'<str>'"),
    ('"[^"]*"', '"<str>"'),
    ("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<id>"),
    ("0x[0-9a-fA-F]+", "<hex>"),
    # Hex ids without 0x (hashes, trace and object ids): a whole word of 8 or more hex digits
    # with at least one digit, so that "deadbeefcafe"-like words of letters a-f stay.
    (_NOT_AFTER_WORD + "(?=[a-fA-F]*[0-9])[0-9a-fA-F]{8,}(?![A-Za-z0-9_])", "<hex>"),
    ("[0-9]+([.][0-9]+)?", "<n>"),
)
TEMPLATE_MAX_LENGTH = 200
# A longer template keeps its head and a hash of the whole: tracebacks share their first lines
# and differ in the exception at the end, which a cut at 200 characters lost.
TEMPLATE_HEAD_LENGTH = 180
TEMPLATE_HASH_LENGTH = 10
_COMPILED = tuple((re.compile(pattern), replacement) for pattern, replacement in TEMPLATE_RULES)


@lru_cache(maxsize=50_000)
def message_template(message: str) -> str:
    """Mask quoted strings, UUIDs, hex ids and numbers so that the same error groups together;
    past 200 characters, the head plus a hash of the whole masked message."""
    text = message
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    if len(text) <= TEMPLATE_MAX_LENGTH:
        return text
    digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:TEMPLATE_HASH_LENGTH]
    return f"{text[:TEMPLATE_HEAD_LENGTH]} ... #{digest}"


def stored_template_sql() -> str:
    """A failure's template on PostgreSQL: the one stored at ingestion, else computed."""
    return f"COALESCE(error_template, {template_sql('error_message')})"


def template_sql(column: str) -> str:
    """The PostgreSQL expression equal to `message_template(column)`."""
    expression = column
    for pattern, replacement in TEMPLATE_RULES:
        quoted_pattern = pattern.replace("'", "''")
        quoted_replacement = replacement.replace("'", "''")
        expression = f"regexp_replace({expression}, '{quoted_pattern}', '{quoted_replacement}', 'g')"
    # The masking is written out four times (no subquery: these expressions sit in GROUP BY
    # lists); it runs only for logs stored without a template, COALESCE skips it for the rest.
    # md5 of text hashes its UTF-8 bytes (the database encoding), as Python does.
    return (
        f"CASE WHEN length({expression}) <= {TEMPLATE_MAX_LENGTH} THEN {expression} "
        f"ELSE left({expression}, {TEMPLATE_HEAD_LENGTH}) || ' ... #' || left(md5({expression}), {TEMPLATE_HASH_LENGTH}) END"
    )


# --- latency histogram ------------------------------------------------------------------

# Buckets grow by 10 %: bucket 0 holds [0, 1) ms, bucket b >= 1 holds [1.1**(b-1), 1.1**b).
# A percentile reads as the geometric middle of the bucket its rank falls in, which is within
# sqrt(1.1) - 1 = 4.9 % of any value in that bucket. Interpolating by rank inside the bucket was
# closer on smooth data but off by up to a whole bucket (+9.9 %) when runs crowd one end of it.
HISTOGRAM_RATIO = 1.1
_LOG_RATIO = math.log(HISTOGRAM_RATIO)
# The bound docs/reflection.md states, for a percentile whose two neighbouring runs (those
# `percentile_cont` interpolates between) share a bucket: always but in a sparse tail, where
# it holds for one of the two.
HISTOGRAM_MAX_ERROR = math.sqrt(HISTOGRAM_RATIO) - 1


def histogram_bucket(ms: float) -> int:
    if ms < 1:
        return 0
    return int(math.floor(math.log(ms) / _LOG_RATIO)) + 1


def bucket_bounds(bucket: int) -> tuple[float, float]:
    if bucket <= 0:
        return 0.0, 1.0
    return HISTOGRAM_RATIO ** (bucket - 1), HISTOGRAM_RATIO**bucket


def histogram_bucket_sql(column: str) -> str:
    """SQL (PostgreSQL and SQLite, where Django registers LN) for `histogram_bucket`."""
    return (
        f"CASE WHEN {column} < 1 THEN 0 "
        f"ELSE CAST(floor(ln({column}) / {_LOG_RATIO!r}) AS INTEGER) + 1 END"
    )


def bucket_middle(bucket: int) -> float:
    """The geometric middle of a bucket (0.5 ms for the sub-millisecond one)."""
    low, high = bucket_bounds(bucket)
    return math.sqrt(low * high) if bucket > 0 else 0.5


def histogram_percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """Percentile: the middle of the bucket where the rank falls (`HISTOGRAM_MAX_ERROR`)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for bucket in sorted(histogram):
        count = histogram[bucket]
        if count and seen + count >= rank:
            return bucket_middle(bucket)
        seen += count
    return bucket_middle(max(histogram))


def exact_percentile_positions(count: int, fraction: float) -> tuple[int, int, float]:
    """1-based row numbers around a `percentile_cont` rank, and the weight of the upper one."""
    position = fraction * (count - 1)
    lower = int(math.floor(position))
    return lower + 1, min(lower + 2, count), position - lower


# --- anomaly tests ----------------------------------------------------------------------

ALPHA = 0.01  # one-sided; z below -2.326 (or above +2.326 for latency)
Z_CRITICAL = 2.3263478740408408
MIN_RECENT_RUNS = 20
MIN_BASELINE_RUNS = 50
MIN_RATE_DROP = 0.05  # a significant but tiny drop is not worth an operator's attention
MIN_LATENCY_RATIO = 1.2


def _p_lower(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def fisher_lower_tail(*, recent_runs: int, recent_successes: int, baseline_runs: int, baseline_successes: int) -> float:
    """One-sided Fisher exact p-value: P(this few recent successes or fewer | the total)."""
    total, successes = recent_runs + baseline_runs, recent_successes + baseline_successes

    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    low = max(0, successes - baseline_runs)
    terms = [log_choose(successes, k) + log_choose(total - successes, recent_runs - k)
             for k in range(low, recent_successes + 1)]
    if not terms:
        return 1.0
    top = max(terms)
    log_tail = top + math.log(sum(math.exp(t - top) for t in terms)) - log_choose(total, recent_runs)
    return min(1.0, math.exp(log_tail))


def success_rate_drop(*, recent_runs: int, recent_successes: int, baseline_runs: int, baseline_successes: int) -> dict | None:
    """Two-proportion z-test (pooled), one-sided: is the last 24 h worse than the previous 7 days?"""
    if recent_runs < MIN_RECENT_RUNS or baseline_runs < MIN_BASELINE_RUNS:
        return None
    recent = recent_successes / recent_runs
    baseline = baseline_successes / baseline_runs
    pooled = (recent_successes + baseline_successes) / (recent_runs + baseline_runs)
    variance = pooled * (1 - pooled) * (1 / recent_runs + 1 / baseline_runs)
    if variance <= 0:
        return None
    z = (recent - baseline) / math.sqrt(variance)
    if z > -Z_CRITICAL or baseline - recent < MIN_RATE_DROP:
        return None
    # The normal approximation's far tail is too light with few recent runs at a high rate (a
    # skewed binomial): over 10,000 stable cases it made p-values small enough to pass the
    # correction across cases. Fisher's exact test confirms, and gives the p-value kept.
    p_value = fisher_lower_tail(recent_runs=recent_runs, recent_successes=recent_successes,
                                baseline_runs=baseline_runs, baseline_successes=baseline_successes)
    if p_value > ALPHA:
        return None
    return {
        "type": "success_rate_drop",
        "test": "two-proportion z-test, one-sided, confirmed by Fisher's exact test",
        "recent_success_rate": round(recent, 4),
        "baseline_success_rate": round(baseline, 4),
        "recent_runs": recent_runs,
        "baseline_runs": baseline_runs,
        "z": round(z, 3),
        "p_value": p_value,
    }


DROP_FDR = 0.05  # false discovery rate of the drops a batch run acts on (Benjamini-Hochberg)


def benjamini_hochberg(p_values: list[float], *, tests: int, fdr: float = DROP_FDR) -> set[int]:
    """Indices of `p_values` that the Benjamini-Hochberg step-up procedure keeps at `fdr`
    among `tests` hypotheses. `tests` may exceed len(p_values): the tests that found nothing
    (whose p-values were not kept) count as p = 1, which keeps the false discovery rate
    controlled (those p-values only grew) and is conservative."""
    if not p_values:
        return set()
    tests = max(tests, len(p_values))
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    kept = 0
    for rank, index in enumerate(order, start=1):
        if p_values[index] <= fdr * rank / tests:
            kept = rank
    return set(order[:kept])


def recent_drop(analysis: dict) -> dict | None:
    """The analysis's `success_rate_drop` finding, if it has one: a case whose last 24 h are
    significantly worse than its week acts on it (warning, suggestion) whatever its window's
    rate, which lags a sudden fall by weeks."""
    for finding in analysis.get("anomalies") or ():
        if finding.get("type") == "success_rate_drop":
            return finding
    return None


def _mean_variance(n: int, total: float, squares: float) -> tuple[float, float]:
    mean = total / n
    variance = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    return mean, variance


def latency_regression(
    *, recent_runs: int, recent_sum: float, recent_squares: float,
    baseline_runs: int, baseline_sum: float, baseline_squares: float,
) -> dict | None:
    """Welch's test on mean latency (normal approximation), one-sided, plus a 20 % floor."""
    if recent_runs < MIN_RECENT_RUNS or baseline_runs < MIN_BASELINE_RUNS:
        return None
    recent_mean, recent_var = _mean_variance(recent_runs, recent_sum, recent_squares)
    baseline_mean, baseline_var = _mean_variance(baseline_runs, baseline_sum, baseline_squares)
    standard_error = math.sqrt(recent_var / recent_runs + baseline_var / baseline_runs)
    if standard_error == 0:
        return None
    z = (recent_mean - baseline_mean) / standard_error
    if z < Z_CRITICAL or recent_mean < MIN_LATENCY_RATIO * baseline_mean:
        return None
    return {
        "type": "latency_regression",
        "test": "Welch z-test on mean latency, one-sided",
        "recent_mean_ms": round(recent_mean, 1),
        "baseline_mean_ms": round(baseline_mean, 1),
        "recent_runs": recent_runs,
        "baseline_runs": baseline_runs,
        "z": round(z, 3),
        "p_value": _p_lower(-z),
    }
