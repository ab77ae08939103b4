"""Which version of a case's plan a caller runs: the one seam between the case bank and the
experiments that serve a candidate version beside the current one.

The case bank knows nothing of experiments (the dependency rule: reflection sits above it), so
reflection installs the resolver when its app is ready (`reflection.apps`); without one every
caller gets the current version. Case search uses this to hand external agents the plan of
their arm (`casebank.search.apis`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from casebank.models import Case

MAX_KEY_LENGTH = 200
ASSIGNMENT_HEADER = "X-Caseloop-Assignment-Key"


@dataclass(frozen=True)
class ServedPlan:
    version: int
    plan: Any
    arm: str | None = None  # "current" or "candidate" while an experiment runs on the case
    experiment_id: int | None = None


PlanResolver = Callable[[Sequence[Case], str], dict[str, ServedPlan]]
_resolver: PlanResolver | None = None


def set_plan_resolver(resolver: PlanResolver | None) -> None:
    global _resolver
    _resolver = resolver


def served_plans(cases: Sequence[Case], key: str) -> dict[str, ServedPlan]:
    """The plan each case serves to `key`, by case id (as text)."""
    if _resolver is not None:
        return _resolver(cases, key)
    return {str(case.pk): ServedPlan(version=case.version, plan=case.plan) for case in cases}


def assignment_key_problem(key: Any) -> str | None:
    """Why `key` cannot be an assignment key, or None. Any printable text up to 200 characters:
    a session id, a conversation id, a user id."""
    if not isinstance(key, str) or not key.strip():
        return "A non-empty text."
    if len(key) > MAX_KEY_LENGTH:
        return f"At most {MAX_KEY_LENGTH} characters."
    if not key.isprintable():
        return "Printable characters only."
    return None
