"""The analysis of one case as it travels from the engine to storage, suggestions and the API.

One definition of the JSON shape in SPEC section 6 (`CaseAnalysis.result` stores it as is,
`AnalysisOutputSerializer` documents it). Plain dicts at run time: a run builds ten
thousand of them and writes them straight to JSON (docs/reflection.md), so these are
TypedDicts, not classes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal, TypedDict


class TemplateCount(TypedDict):
    template: str
    count: int


class CommonError(TypedDict):
    """One error type of `common_errors`, most frequent first."""

    error_type: str
    count: int
    # Of all executions in the window, 0..100. None only between ranking and the engine's
    # last step (`_with_percentages`), which needs the case's total.
    percentage: float | None
    example: str
    templates: list[TemplateCount]


class ErrorTally(TypedDict):
    """Failures of one error type before ranking: the shape of `DailyCaseRollup.errors`
    values, so that roll-ups merge into raw counts directly."""

    count: int
    example: str
    templates: dict[str, int]  # message template -> failures


class LatencyMs(TypedDict):
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class SuccessRateDrop(TypedDict):
    type: Literal["success_rate_drop"]
    test: str
    recent_success_rate: float
    baseline_success_rate: float
    recent_runs: int
    baseline_runs: int
    z: float
    p_value: float


class LatencyRegression(TypedDict):
    type: Literal["latency_regression"]
    test: str
    recent_mean_ms: float
    baseline_mean_ms: float
    recent_runs: int
    baseline_runs: int
    z: float
    p_value: float


Anomaly = SuccessRateDrop | LatencyRegression


class VersionFigures(TypedDict):
    """One case version's runs in the window, for the comparison beside the analysis."""

    version: int | None  # None: runs stored without a version (ingestion never does this)
    runs: int
    successes: int
    success_rate: float | None
    current: bool


class CaseAnalysisData(TypedDict):
    """What `engine.analyze_case` returns and POST /api/reflection/analyze answers.

    Every figure is of the runs of `case_version`, the version the case serves now; `versions`
    compares it with the newest others (`engine.versions`)."""

    case_id: str
    window_days: int
    case_version: int | None
    total_executions: int
    successes: int
    success_rate: float | None
    weighted_success_rate: float | None
    # Runs that succeeded / failed, each weighted by its age like `weighted_success_rate`
    # (half-life REFLECTION_HALF_LIFE_DAYS): what reusing the case's plan has been worth lately.
    reuse_helped: float
    reuse_harmed: float
    common_errors: list[CommonError]
    latency_ms: LatencyMs
    slow: bool
    anomalies: list[Anomaly]
    confidence: Literal["ok", "insufficient"]
    versions: list[VersionFigures]


class SuggestionRefusal(TypedDict):
    """Why the latest proposal for a case was refused (it repeated a change) and when."""

    reason: str
    at: datetime


class AnalysisPoint(TypedDict):
    """One stored analysis's headline figures, for trend charts (`selectors.case_analysis_trend`)."""

    analysed_at: datetime
    window_days: int
    total_executions: int
    success_rate: float | None
    weighted_success_rate: float | None
    latency_p95_ms: float | None
