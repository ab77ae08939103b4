"""Weekly consolidation of the case bank (SPEC section 3), a dry run unless told to apply.

Rules, each case at most one action per run:
- `low_performance`: success rate < 0.30 and usage_count > 10;
- `inactive`: unused (or, never used, created) for 90 days, unless usage_count > 100;
- `duplicate`: cosine similarity > 0.95 with a more used case; its usage moves to that case.
Safety, checked again on the locked row before any change: never touch a case used in the
last 7 days, never auto-archive one with usage_count > 500, never act on a null success rate.
Every archive keeps a `CaseArchive` snapshot with its reason, and `case_restore` undoes it.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from casebank.cases import services
from casebank.models import ArchiveReason, Case, CaseArchive, CaseStatus, ReviewState
from core.errors import Conflict, NotFound

LOW_SUCCESS_RATE = 0.30
LOW_PERFORMANCE_MIN_USES = 10
INACTIVE_DAYS = 90
INACTIVE_KEEP_USES = 100
DUPLICATE_SIMILARITY = 0.95
RECENT_USE_DAYS = 7
NEVER_AUTO_ARCHIVE_USES = 500
SIMILARITY_BLOCK = 256  # rows per block of the similarity matrix: memory stays ~256 x N floats

CONSIDERED_STATUSES = (CaseStatus.ACTIVE, CaseStatus.WARNING, CaseStatus.DEPRECATED)
RESTORABLE_STATUSES = CONSIDERED_STATUSES


@dataclass
class Action:
    case_id: str
    title: str
    reason: str
    detail: str
    merge_into: str | None = None
    similarity: float | None = None
    applied: bool = False


# The safety rules, by the name a report counts them under; what the command prints for each.
SAFETY_RULES = {
    "not_analysed": "never analysed (no success rate)",
    "heavily_used": f"used more than {NEVER_AUTO_ARCHIVE_USES} times",
    "used_recently": f"used in the last {RECENT_USE_DAYS} days",
}


def _held_by(case: Case, now: datetime) -> str | None:
    """The first safety rule that forbids touching the case, or None when it may be acted on."""
    if case.success_rate is None:
        return "not_analysed"
    if case.usage_count > NEVER_AUTO_ARCHIVE_USES:
        return "heavily_used"
    if case.last_used_at is not None and case.last_used_at >= now - timedelta(days=RECENT_USE_DAYS):
        return "used_recently"
    return None


def _safe(case: Case, now: datetime) -> bool:
    """The safety rules shared by every action."""
    return _held_by(case, now) is None


def _rule_reason(case: Case, now: datetime) -> tuple[str, str] | None:
    rate = case.success_rate
    if rate is not None and rate < LOW_SUCCESS_RATE and case.usage_count > LOW_PERFORMANCE_MIN_USES:
        return ArchiveReason.LOW_PERFORMANCE, (
            f"success rate {case.success_rate:.0%} < {LOW_SUCCESS_RATE:.0%} over {case.usage_count} uses"
        )
    last_seen = case.last_used_at or case.created_at
    if last_seen < now - timedelta(days=INACTIVE_DAYS) and case.usage_count <= INACTIVE_KEEP_USES:
        return ArchiveReason.INACTIVE, f"unused since {last_seen:%Y-%m-%d} ({case.usage_count} uses)"
    return None


def _duplicate_pairs(cases: list[Case]) -> list[tuple[float, Case, Case]]:
    """(similarity, keep, drop) for every pair above the threshold, most similar first."""
    with_vectors = [case for case in cases if case.embedding is not None]
    if len(with_vectors) < 2:
        return []
    matrix = np.vstack([np.asarray(case.embedding, dtype=np.float32) for case in with_vectors])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms == 0, 1, norms)
    pairs = []
    for start in range(0, len(with_vectors), SIMILARITY_BLOCK):
        block = matrix[start:start + SIMILARITY_BLOCK] @ matrix.T
        rows, cols = np.nonzero(block > DUPLICATE_SIMILARITY)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=False):
            i = start + row
            if col <= i:
                continue
            a, b = with_vectors[i], with_vectors[col]
            # Merge into the more used case; on a tie, into the older one.
            keep, drop = (a, b) if (a.usage_count, -a.created_at.timestamp()) >= (b.usage_count, -b.created_at.timestamp()) else (b, a)
            pairs.append((float(block[row, col]), keep, drop))
    pairs.sort(key=lambda pair: -pair[0])
    return pairs


@dataclass
class Plan:
    actions: list[Action]
    # Cases a rule would have archived but a safety rule kept, counted by safety rule: so that
    # an empty plan says why it is empty.
    held_back: dict[str, int]


def consolidation_plan(*, now: datetime | None = None) -> list[Action]:
    """What a run would do now, without changing anything."""
    return consolidation_plan_explained(now=now).actions


def consolidation_plan_explained(*, now: datetime | None = None) -> Plan:
    """The plan, and how many cases each safety rule held back from it."""
    now = now or timezone.now()
    # Approved cases only: a case pending review is decided in the review queue, and must never
    # be the survivor that an approved duplicate is merged into.
    cases = list(
        Case.objects.filter(status__in=CONSIDERED_STATUSES, review_state=ReviewState.APPROVED).order_by("created_at")
    )
    actions: dict[uuid.UUID, Action] = {}
    held: dict[uuid.UUID, str] = {}
    for case in cases:
        hold = _held_by(case, now)
        if hold is not None:
            if _rule_reason(case, now) is not None:
                held[case.pk] = hold
            continue
        found = _rule_reason(case, now)
        if found:
            actions[case.pk] = Action(case_id=str(case.pk), title=case.title, reason=found[0], detail=found[1])
    kept: set[uuid.UUID] = set()
    for similarity, keep, drop in _duplicate_pairs(cases):
        # Both sides must pass the safety rules: the kept case changes too (usage adds up).
        if drop.pk in actions or keep.pk in actions or drop.pk in kept:
            continue
        hold = _held_by(drop, now) or _held_by(keep, now)
        if hold is not None:
            held.setdefault(drop.pk, hold)
            continue
        kept.add(keep.pk)
        actions[drop.pk] = Action(
            case_id=str(drop.pk), title=drop.title, reason=ArchiveReason.DUPLICATE,
            detail=f"{similarity:.3f} similar to '{keep.title[:80]}'; {drop.usage_count} uses move there",
            merge_into=str(keep.pk), similarity=round(similarity, 4),
        )
    held_back: dict[str, int] = {}
    for rule in held.values():
        held_back[rule] = held_back.get(rule, 0) + 1
    return Plan(actions=list(actions.values()), held_back=held_back)


def _snapshot(case: Case) -> dict:
    return {
        "title": case.title, "query": case.query, "plan": case.plan, "category": case.category,
        "tags": case.tags, "status": case.status, "version": case.version,
        "success_rate": case.success_rate, "usage_count": case.usage_count,
        "last_used_at": case.last_used_at.isoformat() if case.last_used_at else None,
    }


@transaction.atomic
def case_archive(*, case_id: uuid.UUID, reason: str, actor: str, detail: str = "",
                 merge_into: uuid.UUID | None = None, now: datetime | None = None, enforce_safety: bool = True) -> CaseArchive | None:
    """Archive one case with a snapshot; consolidation re-checks its rules on the locked row."""
    now = now or timezone.now()
    locked = Case.objects.select_for_update().filter(pk=case_id).first()
    if locked is None:
        raise NotFound(f"No case with id {case_id}.")
    if enforce_safety and (locked.status not in CONSIDERED_STATUSES or not _safe(locked, now)):
        return None
    archive = CaseArchive(case=locked, reason=reason, detail=detail[:500], snapshot=_snapshot(locked), actor=actor)
    if merge_into is not None:
        target = Case.objects.select_for_update().filter(pk=merge_into).first()
        if target is None or target.status == CaseStatus.ARCHIVED or (enforce_safety and not _safe(target, now)):
            return None
        Case.objects.filter(pk=target.pk).update(usage_count=F("usage_count") + locked.usage_count)
        archive.merged_into = target
        archive.usage_moved = locked.usage_count
    archive.full_clean()
    archive.save()
    services.case_set_status(case=locked, status=CaseStatus.ARCHIVED, actor=actor, reason=f"{reason}: {detail}"[:500])
    return archive


def consolidation_run(*, dry_run: bool = True, actor: str = "consolidation", now: datetime | None = None) -> dict:
    """Plan, and unless `dry_run`, apply: each action in its own transaction."""
    now = now or timezone.now()
    plan = consolidation_plan_explained(now=now)
    actions = plan.actions
    if not dry_run:
        for action in actions:
            archive = case_archive(
                case_id=uuid.UUID(action.case_id), reason=action.reason, actor=actor, detail=action.detail,
                merge_into=uuid.UUID(action.merge_into) if action.merge_into else None, now=now,
            )
            action.applied = archive is not None
    return {
        "dry_run": dry_run,
        "actions": [asdict(action) for action in actions],
        "applied": sum(action.applied for action in actions),
        "held_back": plan.held_back,
    }


@transaction.atomic
def case_restore(*, case_id: uuid.UUID, actor: str) -> Case:
    """Bring an archived case back to the status it had before; a merged duplicate takes its
    usage back."""
    locked = Case.objects.select_for_update().filter(pk=case_id).first()
    if locked is None:
        raise NotFound(f"No case with id {case_id}.")
    if locked.status != CaseStatus.ARCHIVED:
        raise Conflict(f"The case is {locked.status}, not archived.", errors={"status": [locked.status]})
    archive = CaseArchive.objects.filter(case=locked, restored_at__isnull=True).order_by("-created_at").first()
    if archive is not None:
        if archive.merged_into_id and archive.usage_moved:
            target = Case.objects.select_for_update().filter(pk=archive.merged_into_id).first()
            if target is not None:
                moved_back = min(archive.usage_moved, target.usage_count)
                Case.objects.filter(pk=target.pk).update(usage_count=F("usage_count") - moved_back)
        archive.restored_at = timezone.now()
        archive.restored_by = actor
        archive.save(update_fields=["restored_at", "restored_by"])
    # Back to the status it had when archived (a warning or deprecated case stays so); archives
    # without a usable saved status (none, or archived twice) go back to active.
    before = (archive.snapshot or {}).get("status") if archive else None
    status = before if before in RESTORABLE_STATUSES else CaseStatus.ACTIVE
    return services.case_set_status(
        case=locked, status=status, actor=actor, restoring=True,
        reason=f"restored from archive ({archive.reason})" if archive else "restored",
    )
