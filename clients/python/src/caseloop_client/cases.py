"""Search results as `CaseHit`s, and the one place that decides which version of a plan to run."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CaseHit:
    """A case found for a query, with the plan and the version to run.

    `warning` is true for a case in warning or with a success rate below 50 %: the server returns
    it as what to avoid, never hides it. `score` is the relevance adjusted by the track record.
    """

    id: str
    title: str
    query: str
    plan: Any
    version: int
    success_rate: float | None
    status: str
    warning: bool
    role: str
    score: float
    # The whole result as the server sent it, for fields this class does not name.
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def plan_to_run(result: Mapping[str, Any]) -> tuple[Any, int]:
    """The plan and version a run of this case should use.

    Today the search result's own version (the case's current one). When the server assigns
    experiment arms (a candidate version served to a share of runs), following the assignment
    is this function alone: it reads the served version where the server puts it.
    """
    return result.get("plan"), int(result.get("version") or 1)


def hit_from_result(result: Mapping[str, Any]) -> CaseHit:
    plan, version = plan_to_run(result)
    rate = result.get("success_rate")
    return CaseHit(
        id=str(result["id"]),
        title=str(result.get("title", "")),
        query=str(result.get("query", "")),
        plan=plan,
        version=version,
        success_rate=float(rate) if rate is not None else None,
        status=str(result.get("status", "")),
        warning=bool(result.get("warning", False)),
        role=str(result.get("role", "example")),
        score=float(result.get("score") or 0.0),
        raw=dict(result),
    )
