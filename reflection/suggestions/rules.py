"""Rule-based proposals: a revision from the statistics alone, when there is no LLM or it failed.

Timeouts as the top error -> explicit timeouts and 3 retries; any other top error -> a guard
step against it first; p95 above 2 s -> caching and a latency bound; otherwise a verification
step. A change the plan already has (its steps carry it already, or a text plan already says it)
is left out of the proposal: right after v2 added timeouts and retries, the same failures in the
window made the rules propose them again (issue #15). When every change is left out, the
proposal has no changes and the suggester refuses it (`Proposal.already_in_plan` says why).
"""
from __future__ import annotations

import copy
from collections.abc import Callable

from casebank.models import Case
from reflection.analysis.types import CaseAnalysisData, CommonError
from reflection.models import SuggestionSource
from reflection.suggestions.proposals import Change, Proposal

SLOW_P95_MS = 2_000
# Steps the supervisor does itself (summarise, answer) wait on nothing that times out: a timeout
# and retries there only lengthen the plan a reviewer has to read.
IN_PROCESS_AGENTS = frozenset({"supervisor"})
VERIFY_ACTION = "Verify the result against the task; retry the failing step once."


def _template_texts(error_group: CommonError) -> list[str]:
    """Message templates of an error group; the engine gives `{template, count}` objects."""
    texts = []
    for item in error_group.get("templates") or []:
        text = item.get("template") if isinstance(item, dict) else item
        if isinstance(text, str) and text:
            texts.append(text)
    return texts


def _steps_that_can_time_out(steps: list) -> list:
    external = [
        step for step in steps
        if isinstance(step, dict) and not ({step.get("agent"), *(step.get("agents") or [])} <= IN_PROCESS_AGENTS | {None})
    ]
    return external or [step for step in steps if isinstance(step, dict)]


def _first_agent(steps: list | None) -> str:
    step = steps[0] if steps and isinstance(steps[0], dict) else {}
    return step.get("agent") or (step.get("agents") or ["agent"])[0]


def _add_timeouts(steps: list) -> None:
    for step in _steps_that_can_time_out(steps):
        step.setdefault("timeout_s", 30)
        step["retry"] = {"attempts": 3, "backoff": "exponential"}


def _add_caching(steps: list) -> None:
    for step in _steps_that_can_time_out(steps):
        step["cache"] = True
        step.setdefault("max_latency_ms", SLOW_P95_MS)


def _add_guard(top_type: str, action: str) -> Callable[[list], None]:
    def edit(steps: list) -> None:
        if not any(isinstance(step, dict) and step.get("guard") == top_type for step in steps):
            steps.insert(0, {"agent": _first_agent(steps), "action": action, "guard": top_type})
    return edit


def _add_verification(steps: list) -> None:
    if not any(isinstance(step, dict) and step.get("action") == VERIFY_ACTION for step in steps):
        last = steps[-1] if steps and isinstance(steps[-1], dict) else {}
        steps.append({"agent": last.get("agent") or _first_agent(steps), "action": VERIFY_ACTION})


class _Revision:
    """The plan being revised, and which proposed changes actually change it."""

    def __init__(self, plan: object) -> None:
        self.original = plan
        self.plan = copy.deepcopy(plan)
        self.steps = self.plan if isinstance(self.plan, list) else None
        self.changes: list[Change] = []
        self.already: list[Change] = []
        self.text_lines: list[str] = []

    def apply(self, change: Change, *, edit: Callable[[list], None], line: str) -> None:
        if self.steps is not None:
            before = copy.deepcopy(self.steps)
            edit(self.steps)
            changed = self.steps != before
        else:
            changed = line not in str(self.original)
            if changed:
                self.text_lines.append(line)
        (self.changes if changed else self.already).append(change)


def rule_based_proposal(*, case: Case, analysis: CaseAnalysisData, reason: str) -> Proposal:
    """A revision of the case's plan from its analysis's statistics (top error, timeouts, slowness)."""
    errors = analysis.get("common_errors") or []
    top = errors[0] if errors else None
    latency = analysis.get("latency_ms") or {}
    p95 = latency.get("p95") or 0
    slow = bool(analysis.get("slow")) or p95 > SLOW_P95_MS
    version = analysis.get("case_version") or case.version
    revision = _Revision(case.plan)

    top_type = (top["error_type"] if top else "") or ""
    templates = _template_texts(top) if top else []
    timeouts = "timeout" in top_type.lower() or any("timeout" in t.lower() for t in templates[:3])
    if top and timeouts:
        revision.apply(
            {"what": "Add an explicit timeout and 3 retries with exponential backoff to every step that runs a query "
                     "or calls an agent.", "why": f"{top['percentage']}% of runs failed with {top_type}."},
            edit=_add_timeouts,
            line="Give every step that runs a query or calls an agent an explicit timeout and retry it up to 3 times "
                 "with exponential backoff.",
        )
    elif top:
        template = (templates or [top.get("example") or ""])[0]
        why = f"{top['percentage']}% of runs failed with {top_type or 'an error'}" + (f": {template}" if template else ".")
        action = (f"Check for the known failure {top_type or 'error'} before running the task"
                  + (f" ({template[:120]})" if template else "") + "; stop with a clear message if it applies.")
        revision.apply({"what": f"Add a guard step against {top_type or 'the top error'} first.", "why": why},
                       edit=_add_guard(top_type, action), line=action)
    if slow:
        revision.apply({"what": "Cache intermediate results and bound each step's latency.",
                        "why": f"p95 latency is {p95:.0f} ms (above {SLOW_P95_MS} ms)."},
                       edit=_add_caching, line="Cache intermediate results and keep each step under 2 s.")
    if not revision.changes and not revision.already:
        rate = analysis.get("success_rate") or 0
        revision.apply({"what": "Verify the result before answering and retry the failing step once.",
                        "why": f"Only {rate:.0%} of runs succeed."},
                       edit=_add_verification, line="Verify the result against the task before answering; retry "
                                                    "the failing step once.")
    plan = revision.plan
    runs = f"{analysis.get('total_executions', 0)} runs of v{version}"
    if revision.steps is None:
        plan = f"{case.plan}\n\nAdded after review of {runs}:\n" + "\n".join(f"- {line}" for line in revision.text_lines)
    share = (top["percentage"] if top else 0) or 0
    return Proposal(
        source=SuggestionSource.RULES,
        rationale=(
            f"Rule-based: {analysis.get('successes', 0)} of {runs} succeeded "
            f"({(analysis.get('success_rate') or 0):.0%})" + (f"; the top error is {top_type} ({share}% of runs)." if top else ".")
        ),
        changes=revision.changes,
        revised_plan=plan,
        expected_effect=f"Fewer {top_type} failures." if top else "Fewer failed runs.",
        confidence=round(min(0.6, 0.2 + share / 200), 2),
        fallback_reason=reason[:300],
        already_in_plan=revision.already,
    )
