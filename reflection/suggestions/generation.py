"""Suggestion generation: evidence → LLM (or rules) → a pending `Suggestion` for review.

Only weak cases with enough data get one: analysed success rate below 0.5 with `ok` confidence,
never a case at or above 0.8. The LLM call happens outside any transaction; the row is
written in a short one that re-checks the case did not move on meanwhile. When the shared LLM
budget has no slot, the case is deferred, not given rules (`reflection.suggestions.deferral`).
"""
from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from openai.types.chat import ChatCompletionMessageParam

from casebank.cases.services import validate_plan
from casebank.models import HIDDEN_STATUSES, Case, ReviewState
from casebank.search.selectors import case_search
from core import task_queue
from core.errors import NotFound
from reflection.analysis.engine.stats import recent_drop
from reflection.analysis.types import CaseAnalysisData, CommonError
from reflection.llm import LLMError, LLMUnavailable, get_llm_client
from reflection.models import (
    CaseReflectionState,
    ExecutionLog,
    Experiment,
    ExperimentStatus,
    Suggestion,
    SuggestionSource,
    SuggestionStatus,
)
from reflection.suggestions.deferral import LEASE, SWEEP_SECONDS, suggestion_defer, suggestion_deferral_clear

logger = logging.getLogger(__name__)

SUGGEST_BELOW = 0.5
NEVER_AT_OR_ABOVE = 0.8
FAILING_EXAMPLES = 5
POSITIVE_EXAMPLES = 3
NEGATIVE_EXAMPLES = 2
SLOW_P95_MS = 2_000

SUGGESTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["rationale", "changes", "revised_plan", "expected_effect", "confidence"],
    "properties": {
        "rationale": {"type": "string", "minLength": 1},
        "changes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["what", "why"],
                "properties": {"what": {"type": "string"}, "why": {"type": "string"}},
            },
        },
        "revised_plan": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "object"}},
            ]
        },
        "expected_effect": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

SYSTEM_PROMPT = (
    "You improve the reusable plans of an agent platform. A plan is text or a JSON list of "
    "steps, each naming its agent (\"agent\": \"...\"). You get one weak plan with the "
    "statistics of its recent runs, its error groups with failing examples, plans of similar "
    "tasks that succeed (follow them) and that fail (avoid what they do). Propose the smallest "
    "revision that addresses the observed failures. Keep the agents the plan already uses "
    "unless the evidence says otherwise. Be concrete; do not invent statistics."
)


class Change(TypedDict):
    """One item of a suggestion's `changes` (the LLM's answer has the same shape, SUGGESTION_SCHEMA)."""

    what: str
    why: str


class CaseDigest(TypedDict):
    """A similar case shown to the LLM as an example to follow or avoid."""

    id: str
    title: str
    query: str
    plan: Any  # text or a list of steps
    success_rate: float | None
    runs: int


class FailingExample(TypedDict):
    error_type: str
    error_message: str
    execution_time_ms: int
    case_version: int | None
    context: str  # the run's context as JSON, cut to 300 characters
    created_at: str


class Evidence(TypedDict):
    """What a suggestion is based on: sent to the LLM, stored on the suggestion, shown in admin."""

    analysis: dict[str, Any]  # the analysis's figures: `CaseAnalysisData` without id and errors
    common_errors: list[CommonError]
    failing_examples: list[FailingExample]
    similar_successes: list[CaseDigest]
    similar_failures: list[CaseDigest]


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
    extra: dict[str, Any] = field(default_factory=dict)


def ineligibility(*, case: Case, analysis: CaseAnalysisData) -> str | None:
    """Why this case gets no suggestion now, or None when it should get one."""
    rate = analysis.get("success_rate")
    if case.status in HIDDEN_STATUSES:
        return f"The case is {case.status}."
    if case.review_state != ReviewState.APPROVED:
        return f"The case is {case.get_review_state_display().lower()}: it is not a reusable plan yet."
    if analysis.get("confidence") != "ok":
        return "Not enough runs for a confident analysis."
    if rate is None:
        return "No success rate yet."
    if recent_drop(analysis) is not None:
        return None  # a sudden fall: the window's rate lags it by weeks
    if rate >= NEVER_AT_OR_ABOVE:
        return f"Success rate {rate:.0%} is at or above {NEVER_AT_OR_ABOVE:.0%}."
    if rate >= SUGGEST_BELOW:
        return f"Success rate {rate:.0%} is not below {SUGGEST_BELOW:.0%}."
    return None


def _case_digest(case: Case) -> CaseDigest:
    return {
        "id": str(case.id),
        "title": case.title,
        "query": case.query,
        "plan": case.plan,
        "success_rate": case.success_rate,
        "runs": case.run_count,
    }


def build_evidence(*, case: Case, analysis: CaseAnalysisData) -> Evidence:
    failing = (
        ExecutionLog.objects.filter(case=case, success=False)
        .order_by("-created_at")
        .values("error_type", "error_message", "execution_time_ms", "case_version", "context", "created_at")[
            :FAILING_EXAMPLES
        ]
    )
    examples: list[FailingExample] = [
        {
            "error_type": row["error_type"],
            "error_message": (row["error_message"] or "")[:300],
            "execution_time_ms": row["execution_time_ms"],
            "case_version": row["case_version"],
            "context": json.dumps(row["context"], default=str)[:300],
            "created_at": row["created_at"].isoformat(),
        }
        for row in failing
    ]
    positives: list[CaseDigest] = []
    negatives: list[CaseDigest] = []
    try:
        hits = case_search(query=case.query, k=10, mode="hybrid")
    except Exception:  # retrieval is evidence, not a precondition
        logger.exception("similar-case search failed for %s", case.id)
        hits = []
    for hit in hits:
        other = hit.case
        if other.id == case.id or other.success_rate is None:
            continue
        if other.success_rate >= NEVER_AT_OR_ABOVE and len(positives) < POSITIVE_EXAMPLES:
            positives.append(_case_digest(other))
        elif hit.warning and len(negatives) < NEGATIVE_EXAMPLES:  # in warning or below SUGGEST_BELOW
            negatives.append(_case_digest(other))
    return {
        "analysis": {
            key: analysis.get(key)
            for key in (
                "window_days",
                "total_executions",
                "successes",
                "success_rate",
                "weighted_success_rate",
                "latency_ms",
                "slow",
                "anomalies",
                "confidence",
            )
        },
        "common_errors": analysis.get("common_errors") or [],
        "failing_examples": examples,
        "similar_successes": positives,
        "similar_failures": negatives,
    }


def build_messages(*, case: Case, evidence: Evidence) -> list[ChatCompletionMessageParam]:
    payload = {"case": {"title": case.title, "task": case.query, "version": case.version, "plan": case.plan}, **evidence}
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": "Evidence (JSON):\n"
            + json.dumps(payload, default=str, ensure_ascii=False)
            + "\n\nReturn JSON with rationale, changes [{what, why}], revised_plan (same form as "
            "the plan), expected_effect and confidence (0..1).",
        },
    ]


# --- rules ------------------------------------------------------------------------------


def _template_texts(error_group: CommonError) -> list[str]:
    """Message templates of an error group; the engine gives `{template, count}` objects."""
    texts = []
    for item in error_group.get("templates") or []:
        text = item.get("template") if isinstance(item, dict) else item
        if isinstance(text, str) and text:
            texts.append(text)
    return texts


# Steps the supervisor does itself (summarise, answer) wait on nothing that times out: a timeout
# and retries there only lengthen the plan a reviewer has to read.
IN_PROCESS_AGENTS = frozenset({"supervisor"})


def _steps_that_can_time_out(steps: list) -> list:
    external = [
        step for step in steps
        if isinstance(step, dict) and not ({step.get("agent"), *(step.get("agents") or [])} <= IN_PROCESS_AGENTS | {None})
    ]
    return external or [step for step in steps if isinstance(step, dict)]


def rule_based_proposal(*, case: Case, analysis: CaseAnalysisData, reason: str) -> Proposal:
    """A revision from the statistics alone: top error, timeouts, slowness."""
    errors = analysis.get("common_errors") or []
    top = errors[0] if errors else None
    latency = analysis.get("latency_ms") or {}
    p95 = latency.get("p95") or 0
    slow = bool(analysis.get("slow")) or p95 > SLOW_P95_MS
    plan = copy.deepcopy(case.plan)
    steps = plan if isinstance(plan, list) else None
    changes: list[Change] = []
    text_lines: list[str] = []

    def first_agent() -> str:
        step = steps[0] if steps else {}
        return step.get("agent") or (step.get("agents") or ["agent"])[0]

    top_type = (top["error_type"] if top else "") or ""
    templates = _template_texts(top) if top else []
    timeouts = "timeout" in top_type.lower() or any("timeout" in t.lower() for t in templates[:3])
    if top and timeouts:
        why = f"{top['percentage']}% of runs failed with {top_type}."
        changes.append({"what": "Add an explicit timeout and 3 retries with exponential backoff to every step that "
                                "runs a query or calls an agent.", "why": why})
        if steps is not None:
            for step in _steps_that_can_time_out(steps):
                step.setdefault("timeout_s", 30)
                step["retry"] = {"attempts": 3, "backoff": "exponential"}
        text_lines.append("Give every step that runs a query or calls an agent an explicit timeout and retry it up to "
                          "3 times with exponential backoff.")
    elif top:
        template = (templates or [top.get("example") or ""])[0]
        why = f"{top['percentage']}% of runs failed with {top_type or 'an error'}" + (f": {template}" if template else ".")
        action = f"Check for the known failure {top_type or 'error'} before running the task" + (f" ({template[:120]})" if template else "") + "; stop with a clear message if it applies."
        changes.append({"what": f"Add a guard step against {top_type or 'the top error'} first.", "why": why})
        if steps is not None:
            steps.insert(0, {"agent": first_agent(), "action": action, "guard": top_type})
        text_lines.append(action)
    if slow:
        why = f"p95 latency is {p95:.0f} ms (above {SLOW_P95_MS} ms)."
        changes.append({"what": "Cache intermediate results and bound each step's latency.", "why": why})
        if steps is not None:
            for step in _steps_that_can_time_out(steps):
                step["cache"] = True
                step.setdefault("max_latency_ms", SLOW_P95_MS)
        text_lines.append("Cache intermediate results and keep each step under 2 s.")
    if not changes:
        rate = analysis.get("success_rate") or 0
        changes.append(
            {"what": "Verify the result before answering and retry the failing step once.", "why": f"Only {rate:.0%} of runs succeed."}
        )
        if steps is not None:
            steps.append({"agent": (steps[-1].get("agent") or first_agent()), "action": "Verify the result against the task; retry the failing step once."})
        text_lines.append("Verify the result against the task before answering; retry the failing step once.")
    if steps is None:
        plan = f"{case.plan}\n\nAdded after review of {analysis.get('total_executions', 0)} runs:\n" + "\n".join(
            f"- {line}" for line in text_lines
        )
    share = (top["percentage"] if top else 0) or 0
    return Proposal(
        source=SuggestionSource.RULES,
        rationale=(
            f"Rule-based: {analysis.get('successes', 0)} of {analysis.get('total_executions', 0)} runs succeeded "
            f"({(analysis.get('success_rate') or 0):.0%})" + (f"; the top error is {top_type} ({share}% of runs)." if top else ".")
        ),
        changes=changes,
        revised_plan=plan,
        expected_effect=f"Fewer {top_type} failures." if top else "Fewer failed runs.",
        confidence=round(min(0.6, 0.2 + share / 200), 2),
        fallback_reason=reason[:300],
    )


# --- LLM --------------------------------------------------------------------------------


def llm_proposal(*, case: Case, evidence: Evidence) -> tuple[Proposal | None, str]:
    """The LLM's revision, or None and why not (no LLM, breaker open, failed, invalid plan).

    A used-up rate limit is not a failure: `LLMUnavailable(reason="rate_limited")` propagates,
    and the caller defers the case instead of settling for rules.
    """
    client = get_llm_client()
    if client is None:
        return None, "No LLM configured."
    try:
        result = client.complete_json(
            purpose="suggestion", messages=build_messages(case=case, evidence=evidence), schema=SUGGESTION_SCHEMA
        )
    except LLMUnavailable as exc:
        if exc.reason == "rate_limited":
            raise
        return None, f"LLM unavailable or failed: {exc}"
    except LLMError as exc:
        return None, f"LLM unavailable or failed: {exc}"
    data = result.data
    problems = validate_plan(data["revised_plan"])
    if problems:
        return None, "The LLM's revised plan was invalid: " + " ".join(problems)
    return (
        Proposal(
            source=SuggestionSource.LLM,
            rationale=data["rationale"],
            changes=data["changes"],
            revised_plan=data["revised_plan"],
            expected_effect=data["expected_effect"],
            confidence=float(data["confidence"]),
            model=result.model,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            cost_usd=result.cost_usd,
        ),
        "",
    )


# --- entry point ------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationResult:
    suggestion: Suggestion | None
    reason: str = ""  # why no suggestion was made
    deferred_until: datetime | None = None  # set when the case waits for the LLM budget


def suggestion_generate(*, case_id: UUID | str, analysis: CaseAnalysisData | None = None, use_llm: bool = True) -> Suggestion | None:
    """Make a pending suggestion for a weak case; None when it is not eligible, already has one,
    or waits for the LLM budget (then it is retried, see `reflection.suggestions.deferral`)."""
    return suggestion_generate_result(case_id=case_id, analysis=analysis, use_llm=use_llm).suggestion


def suggestion_generate_explained(
    *, case_id: UUID | str, analysis: CaseAnalysisData | None = None, use_llm: bool = True
) -> tuple[Suggestion | None, str]:
    """`suggestion_generate` with the reason when nothing was made (for the API and the command)."""
    result = suggestion_generate_result(case_id=case_id, analysis=analysis, use_llm=use_llm)
    return result.suggestion, result.reason


def suggestion_generate_result(
    *, case_id: UUID | str, analysis: CaseAnalysisData | None = None, use_llm: bool = True
) -> GenerationResult:
    """`suggestion_generate` with the whole outcome. Every outcome but "deferred" ends a deferral."""
    result = _generate(case_id=case_id, analysis=analysis, use_llm=use_llm)
    if result.deferred_until is None:
        suggestion_deferral_clear(case_id=case_id)
    return result


def _deferred(case: Case, retry_after: float | None) -> GenerationResult:
    due = suggestion_defer(case_id=case.pk, retry_after=retry_after)
    return GenerationResult(
        None,
        f"The LLM budget ({settings.LLM_CALLS_PER_MINUTE} requests per minute) is used up; "
        f"the suggestion is deferred to {due:%H:%M:%S} UTC.",
        deferred_until=due,
    )


def _generate(*, case_id: UUID | str, analysis: CaseAnalysisData | None, use_llm: bool) -> GenerationResult:
    case = Case.objects.defer("embedding").filter(pk=case_id).first()
    if case is None:
        raise NotFound("Case not found.")
    if analysis is None:
        from reflection.analysis.engine import analyze_case

        analysis = analyze_case(case_id=case.id)
    reason = ineligibility(case=case, analysis=analysis)
    if reason is not None:
        return GenerationResult(None, reason)
    if Suggestion.objects.filter(case=case, status=SuggestionStatus.PENDING, base_version=case.version).exists():
        return GenerationResult(None, f"A suggestion for version {case.version} is already pending.")
    running = Experiment.objects.filter(case=case, status=ExperimentStatus.RUNNING).values_list("pk", flat=True).first()
    if running is not None:
        return GenerationResult(None, f"Experiment #{running} is testing a change to this case; it decides first.")
    client = get_llm_client() if use_llm else None
    if client is not None:
        # Cheap check before the evidence (a hybrid search): in a batch, every weak case after
        # the budget ran out is deferred at the cost of one query.
        wait = client.seconds_until_slot()
        if wait > 0:
            return _deferred(case, wait)
    evidence = build_evidence(case=case, analysis=analysis)
    try:
        proposal, why_not = llm_proposal(case=case, evidence=evidence) if use_llm else (None, "LLM not requested.")
    except LLMUnavailable as exc:  # rate limited: not now, but the LLM is not failing either
        return _deferred(case, exc.retry_after)
    if proposal is None:
        proposal = rule_based_proposal(case=case, analysis=analysis, reason=why_not)
    repeated = repeated_change(case=case, revised_plan=proposal.revised_plan)
    if repeated is not None:
        return GenerationResult(None, repeated)
    suggestion = _suggestion_create(case=case, evidence=evidence, proposal=proposal)
    return GenerationResult(suggestion, "" if suggestion else "The case changed while the suggestion was being made.")


def repeated_change(*, case: Case, revised_plan: Any) -> str | None:
    """Why a proposed plan is no news, or None: it is the current plan (the change is already
    applied: rules see the same failures and propose the same steps again), or a reviewer
    rejected the same plan before, or an experiment rolled it back."""
    if revised_plan == case.plan:
        return f"The proposed change is already in version {case.version}."
    refused = Suggestion.objects.filter(
        case=case, status__in=[SuggestionStatus.REJECTED, SuggestionStatus.ROLLED_BACK]
    ).values_list("pk", "status", "revised_plan")
    for pk, status, plan in refused:
        if plan == revised_plan:
            verb = "rejected" if status == SuggestionStatus.REJECTED else "rolled back after its experiment"
            return f"The same change was {verb} in suggestion #{pk}."
    return None


@transaction.atomic
def _suggestion_create(*, case: Case, evidence: Evidence, proposal: Proposal) -> Suggestion | None:
    from reflection.suggestions.services import suggestion_mark_stale

    locked = Case.objects.select_for_update().defer("embedding").get(pk=case.pk)
    if locked.version != case.version:
        # Edited while the LLM was thinking: the proposal answers an old plan. The next run retries.
        return None
    for older in Suggestion.objects.select_for_update().filter(case=locked, status=SuggestionStatus.PENDING):
        if older.base_version == locked.version:
            return None
        suggestion_mark_stale(suggestion=older, reason=f"The case moved on to version {locked.version}.")
    suggestion = Suggestion(
        case=locked,
        base_version=locked.version,
        source=proposal.source,
        rationale=proposal.rationale,
        changes=proposal.changes,
        current_plan=locked.plan,
        revised_plan=proposal.revised_plan,
        expected_effect=proposal.expected_effect,
        confidence=max(0.0, min(1.0, proposal.confidence)),
        evidence=evidence,
        model=proposal.model,
        tokens_in=proposal.tokens_in,
        tokens_out=proposal.tokens_out,
        cost_usd=proposal.cost_usd,
        fallback_reason=proposal.fallback_reason,
    )
    suggestion.full_clean(exclude=["case"])
    suggestion.save()
    # Lost if the broker is down (a warning is logged); the suggestion waits in the review queue.
    task_queue.enqueue_on_commit("reflection.suggestions.tasks.notify_suggestion_created", suggestion.pk)
    return suggestion


def after_analysis(*, case_id: UUID | str, analysis: CaseAnalysisData | None = None,
                   verifying: frozenset[str] | None = None) -> Suggestion | None:
    """The improvement loop's share of a reflection run's per-case step.

    Re-verifies the case's applied suggestions against the new runs, then proposes a revision
    if the case is weak. Runs outside the run's transactions: the LLM may take seconds. Costs
    no query for the common case (healthy, nothing applied): batch runs cover 10,000s of cases,
    and pass `verifying` (`cases_under_verification()`, read once per chunk) to skip the cache.
    """
    from reflection.suggestions.services import cases_under_verification, suggestions_verify_for_case

    if verifying is None:
        verifying = cases_under_verification()
    if str(case_id) in verifying:
        suggestions_verify_for_case(case_id=case_id)
    if analysis is not None and not looks_weak(analysis):
        return None
    return suggestion_generate(case_id=case_id, analysis=analysis)


def looks_weak(analysis: CaseAnalysisData) -> bool:
    """The part of `ineligibility` that needs only the analysis."""
    rate = analysis.get("success_rate")
    return analysis.get("confidence") == "ok" and rate is not None and (
        rate < SUGGEST_BELOW or recent_drop(analysis) is not None
    )


def suggestions_generate_deferred(*, now: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """Retry due cases, oldest first; stop when the budget says "not now" again.

    Returns counts: `created` suggestions, `deferred` again, `none` (no longer eligible, already
    pending, case changed) and `due` (cases found due).
    """
    now = now or timezone.now()
    # More than the per-minute budget cannot get an LLM call in this sweep anyway.
    limit = limit or max(settings.LLM_CALLS_PER_MINUTE, 1)
    due = list(
        CaseReflectionState.objects.filter(suggestion_due_at__lte=now)
        .order_by("suggestion_due_at")
        .values_list("case_id", "suggestion_due_at")[:limit]
    )
    counts = {"due": len(due), "created": 0, "deferred": 0, "none": 0}
    started = time.monotonic()
    for case_id, due_at in due:
        if time.monotonic() - started > SWEEP_SECONDS:
            break
        taken = CaseReflectionState.objects.filter(case_id=case_id, suggestion_due_at=due_at).update(
            suggestion_due_at=timezone.now() + LEASE
        )
        if taken != 1:
            continue  # another sweep has it, or it was answered meanwhile
        try:
            result = suggestion_generate_result(case_id=case_id)
        except Exception:  # one case must not stop the sweep; the lease makes it due again
            logger.exception("deferred suggestion for case %s failed", case_id)
            continue
        if result.deferred_until is not None:
            counts["deferred"] += 1
            break  # the budget is used up: the rest stay due for the next sweep
        counts["created" if result.suggestion is not None else "none"] += 1
    return counts
