"""Whether a proposed plan is news (issue #15), and the record of a proposal refused as no news.

A proposal is refused, whether it came from the LLM or the rules, when its plan
- is the current plan, or adds nothing to it (everything it holds is in the plan already),
- is the plan of a suggestion a reviewer rejected, or that an experiment rolled back,
- is the plan of an earlier version that was applied and then rolled back (case history).
Plans compare by content: JSON with sorted keys, text without trailing blanks. The refusal is
kept on the case's reflection state with its reason, shown on the analysis page and in the
analysis API, so that a batch run's refusals are not silently dropped.
"""
from __future__ import annotations

import json
import re
from typing import Any

from django.utils import timezone

from casebank.models import Case, CaseVersion
from reflection.models import CaseReflectionState, Experiment, ExperimentStatus, Suggestion, SuggestionStatus

ROLLBACK_REASON = re.compile(r"^rollback to v(\d+)$")
MAX_REASON = 500


def canonical(plan: Any) -> str:
    """A plan's content as one comparable text."""
    if isinstance(plan, str):
        return "\n".join(line.rstrip() for line in plan.strip().splitlines())
    return json.dumps(plan, sort_keys=True, ensure_ascii=False)


def contained(part: Any, whole: Any) -> bool:
    """Whether everything in `part` is already in `whole`: each of a dict's items (values
    contained in turn), a list's items in order (each within a later item of `whole`: a
    reordering is news, a removal is not), a text's lines among its lines; else equality."""
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(key in whole and contained(value, whole[key]) for key, value in part.items())
    if isinstance(part, list) and isinstance(whole, list):
        remaining = iter(whole)
        return all(any(contained(item, other) for other in remaining) for item in part)
    if isinstance(part, str) and isinstance(whole, str):
        lines = {line.strip() for line in whole.splitlines()}
        return all(line.strip() in lines for line in part.splitlines())
    return part == whole


def _rolled_back_versions(case: Case) -> list[tuple[int, int, Any]]:
    """(version, the version that rolled it back, its plan) for every version that was the
    current one and was then undone by a rollback ("rollback to vK" undoes those after K).
    A candidate snapshot counts only if its experiment promoted it (else it was never applied)."""
    history = list(CaseVersion.objects.filter(case=case).order_by("version").values_list("version", "reason", "plan"))
    promoted = set(Experiment.objects.filter(case=case, status=ExperimentStatus.PROMOTED)
                   .values_list("candidate_version", flat=True))
    undone: list[tuple[int, int, Any]] = []
    for by_version, reason, _ in history:
        match = ROLLBACK_REASON.match(reason)
        if match is None:
            continue
        target = int(match.group(1))
        undone += [
            (version, by_version, plan) for version, why, plan in history
            if target < version < by_version and (not why.endswith("(candidate)") or version in promoted)
        ]
    return undone


def repeated_change(*, case: Case, revised_plan: Any) -> str | None:
    """Why a proposed plan is no news, or None when it is."""
    proposed = canonical(revised_plan)
    if proposed == canonical(case.plan):
        return f"The proposed change is already in version {case.version}."
    if contained(revised_plan, case.plan):
        return (f"The proposed plan adds nothing to version {case.version}: everything in it is in the plan "
                "already.")
    refused = Suggestion.objects.filter(
        case=case, status__in=[SuggestionStatus.REJECTED, SuggestionStatus.ROLLED_BACK]
    ).order_by("pk").values_list("pk", "status", "revised_plan")
    for pk, status, plan in refused:
        if canonical(plan) == proposed:
            verb = "rejected" if status == SuggestionStatus.REJECTED else "rolled back after its experiment"
            return f"The same change was {verb} in suggestion #{pk}."
    for version, by_version, plan in _rolled_back_versions(case):
        if canonical(plan) == proposed:
            return f"The same change was applied as version {version} and rolled back (version {by_version})."
    return None


def suggestion_refusal_record(*, case_id: Any, reason: str) -> None:
    """Keep why a proposal for the case was refused, and when (the latest refusal only)."""
    CaseReflectionState.objects.update_or_create(
        case_id=case_id, defaults={"suggestion_refused": reason[:MAX_REASON], "suggestion_refused_at": timezone.now()}
    )


def suggestion_refusal_clear(*, case_id: Any) -> None:
    """A suggestion was made: an older refusal no longer describes the case."""
    CaseReflectionState.objects.filter(case_id=case_id, suggestion_refused_at__isnull=False).update(
        suggestion_refused="", suggestion_refused_at=None
    )
