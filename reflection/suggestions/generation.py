"""Suggestion generation: evidence → LLM (or rules) → a pending `Suggestion` for review.

Only weak cases with enough data get one: analysed success rate below 0.5 with `ok` confidence,
never a case at or above 0.8, never while an experiment decides on a change to the case. The
evidence is the current version's runs only; a proposal that repeats a change (already in the
plan, rejected, rolled back) is refused with its reason recorded (`novelty`). The LLM call
happens outside any transaction; the row is written in a short one that re-checks the case did
not move on meanwhile. When the shared LLM
budget has no slot, the case is deferred, not given rules (`reflection.suggestions.deferral`).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
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
from reflection.suggestions.novelty import repeated_change, suggestion_refusal_clear, suggestion_refusal_record
from reflection.suggestions.proposals import Proposal
from reflection.suggestions.rules import rule_based_proposal

logger = logging.getLogger(__name__)

SUGGEST_BELOW = 0.5
NEVER_AT_OR_ABOVE = 0.8
FAILING_EXAMPLES = 5
POSITIVE_EXAMPLES = 3
NEGATIVE_EXAMPLES = 2

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
    """The analysis of the current version, its latest failing runs (of that version only: a
    mixed view proposed v2's own fix again, issue #15) and similar cases."""
    version = analysis.get("case_version") or case.version
    failing = (
        ExecutionLog.objects.filter(case=case, case_version=version, success=False)
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
                "case_version",
                "window_days",
                "total_executions",
                "successes",
                "success_rate",
                "weighted_success_rate",
                "latency_ms",
                "slow",
                "anomalies",
                "confidence",
                "versions",
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
    deciding = _experiment_deciding(case)
    if deciding is not None:
        return GenerationResult(None, deciding)
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
    repeated = _no_news(case, proposal)
    if repeated is not None:
        suggestion_refusal_record(case_id=case.pk, reason=repeated)
        return GenerationResult(None, repeated)
    suggestion = _suggestion_create(case=case, evidence=evidence, proposal=proposal)
    if suggestion is not None:
        suggestion_refusal_clear(case_id=case.pk)
    return GenerationResult(suggestion, "" if suggestion else "The case changed while the suggestion was being made.")


def _experiment_deciding(case: Case) -> str | None:
    """Why an experiment on the case decides before any new suggestion: one running (its
    candidate is on a canary), or one that found its candidate better and awaits a reviewer."""
    found = Experiment.objects.filter(
        case=case, status__in=[ExperimentStatus.RUNNING, ExperimentStatus.AWAITING_REVIEW]
    ).values_list("pk", "status").first()
    if found is None:
        return None
    pk, status = found
    if status == ExperimentStatus.RUNNING:
        return f"Experiment #{pk} is testing a change to this case; it decides first."
    return f"Experiment #{pk} found its candidate better; a reviewer decides on it first."


def _no_news(case: Case, proposal: Proposal) -> str | None:
    """Why a proposal repeats a change, or None (the LLM's and the rules' alike)."""
    if not proposal.changes:
        already = "; ".join(change["what"] for change in proposal.already_in_plan)
        return f"The proposed change is already in version {case.version}. Already there: {already}"
    return repeated_change(case=case, revised_plan=proposal.revised_plan)


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
