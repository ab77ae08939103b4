"""What a suggester proposes, before it is stored as a `Suggestion`: from the LLM or the rules."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict


class Change(TypedDict):
    """One item of a suggestion's `changes` (the LLM's answer has the same shape, SUGGESTION_SCHEMA)."""

    what: str
    why: str


@dataclass
class Proposal:
    source: str
    rationale: str
    changes: list[Change]
    revised_plan: Any
    expected_effect: str
    confidence: float
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    fallback_reason: str = ""
    # Changes the rules would have made that the plan already has (left out of `changes`).
    already_in_plan: list[Change] = field(default_factory=list)
