"""What the tools return: pydantic models, so every tool publishes an output schema and clients
get `structuredContent` besides the JSON text."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class FoundCase(BaseModel):
    id: str
    title: str
    query: str = Field(description="The task the case solves.")
    category: str
    tags: list[str]
    status: str = Field(description="active, warning, deprecated or archived.")
    version: int = Field(description="The version this client runs (a candidate one while an experiment assigns it).")
    plan: Any = Field(description="That version's plan: a list of steps, each naming its agent, or text.")
    success_rate: float | None = Field(description="From the last analysis, 0..1; null when never analysed.")
    runs: int = Field(description="Executions behind that success rate.")
    score: float = Field(description="Relevance adjusted by the track record; higher is better.")
    role: Literal["example", "warning"]
    why_warning: str = Field(default="", description="Set for warnings: why the case is one.")


class CaseSearchResult(BaseModel):
    query: str
    examples: list[FoundCase] = Field(description="Cases that worked: plans to follow, best first.")
    warnings: list[FoundCase] = Field(
        description="Similar cases that often failed (status warning or success rate below 50%): what to avoid."
    )


class CasePlan(BaseModel):
    case_id: str
    title: str
    status: str
    version: int = Field(description="Send it back with log_run, so the outcome counts for this version.")
    steps: list[dict[str, Any]] = Field(description="The steps to run, in order; a text plan is one step.")
    success_rate: float | None
    runs: int
    warning: bool = Field(description="True for a case in warning or with a success rate below 50%.")
    experiment_id: int | None = Field(default=None, description="The experiment running on the case, if any.")
    arm: str | None = Field(default=None, description="current or candidate: the version this client is assigned.")


class LoggedRun(BaseModel):
    run_id: str = Field(description="The log's id; sending the same run_id again never stores it twice.")
    case_id: str
    case_version: int | None
    stored: bool = Field(description="False when this run_id was stored already.")


class AnalysisPoint(BaseModel):
    analysed_at: datetime
    window_days: int
    total_executions: int
    success_rate: float | None
    weighted_success_rate: float | None
    latency_p95_ms: float | None


class CaseAnalysisResult(BaseModel):
    case_id: str
    analysed_at: datetime | None = Field(description="Null when the case was never analysed.")
    analysis: dict[str, Any] | None = Field(
        description="The latest stored analysis of the case's current version (case_version): success rates, common "
                    "errors, latency, anomalies, confidence; `versions` compares the newest versions' runs."
    )
    history: list[AnalysisPoint] = Field(description="Earlier analyses' headline figures, newest first.")
