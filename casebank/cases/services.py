"""Every write to the case bank goes through these functions (API, admin, commands, tasks)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from casebank.cases.read_cache import bank_changed
from casebank.models import (
    Case,
    CaseReviewChange,
    CaseStatus,
    CaseStatusChange,
    CaseVersion,
    ReviewState,
)
from casebank.search.embeddings import embed_text
from casebank.search.services import case_terms_index, search_length_of, search_text
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.pg_arrays import uuid_array
from core.validators import NUL_MESSAGE, nul_path

CONTENT_FIELDS = ("title", "query", "plan")


MAX_PLAN_STEPS = 100


_CATEGORY_RE = re.compile(r"^[\w\- ]+(/[\w\- ]+)*$", re.UNICODE)


# Allowed lifecycle moves. `archived` is left through restore (consolidation) or back to active.
STATUS_TRANSITIONS: dict[str, set[str]] = {
    CaseStatus.ACTIVE: {CaseStatus.WARNING, CaseStatus.DEPRECATED, CaseStatus.ARCHIVED},
    CaseStatus.WARNING: {CaseStatus.ACTIVE, CaseStatus.DEPRECATED, CaseStatus.ARCHIVED},
    CaseStatus.DEPRECATED: {CaseStatus.ACTIVE, CaseStatus.ARCHIVED},
    CaseStatus.ARCHIVED: {CaseStatus.ACTIVE},
}


def validate_plan(plan: Any) -> list[str]:
    """A plan is non-empty text, or a list of steps that each name their agent(s)."""
    # PostgreSQL refuses NUL in text and JSON (a DataError, i.e. a 500); plans also come from the LLM.
    where = nul_path(plan, "plan")
    if where is not None:
        return [NUL_MESSAGE if where == "plan" else f"{NUL_MESSAGE} Found in {where}."]
    if isinstance(plan, str):
        return [] if plan.strip() else ["The plan must not be empty."]
    if not isinstance(plan, list) or not plan:
        return ["The plan must be non-empty text or a non-empty list of steps."]
    if len(plan) > MAX_PLAN_STEPS:
        return [f"A plan has at most {MAX_PLAN_STEPS} steps."]
    problems = []
    for index, step in enumerate(plan, start=1):
        if not isinstance(step, dict):
            problems.append(f"Step {index} must be an object.")
            continue
        agent, agents = step.get("agent"), step.get("agents")
        named_one = isinstance(agent, str) and agent.strip()
        named_many = (
            isinstance(agents, list) and agents and all(isinstance(a, str) and a for a in agents)
        )
        if not (named_one or named_many):
            problems.append(f'Step {index} must name its agent ("agent": "..." or "agents": [...]).')
    return problems


def validate_case_content(
    *, title: str, query: str, plan: Any, category: str, tags: Sequence[str]
) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(title, str) or not title.strip():
        errors["title"] = ["A title is required."]
    elif len(title) > 200:
        errors["title"] = ["At most 200 characters."]
    if not isinstance(query, str) or not query.strip():
        errors["query"] = ["A query is required."]
    elif len(query) > 10_000:
        errors["query"] = ["At most 10,000 characters."]
    plan_problems = validate_plan(plan)
    if plan_problems:
        errors["plan"] = plan_problems
    if category and (len(category) > 200 or not _CATEGORY_RE.match(category)):
        errors["category"] = ['A path of words separated by "/", e.g. "analytics/sales".']
    if not isinstance(tags, (list, tuple)) or not all(
        isinstance(tag, str) and 0 < len(tag) <= 50 for tag in tags
    ):
        errors["tags"] = ["A list of strings of 1 to 50 characters."]
    elif len(tags) > 30:
        errors["tags"] = ["At most 30 tags."]
    # Checked on every path in (API, admin, suggestions, commands): PostgreSQL refuses the
    # character with a DataError, which would be a 500.
    for name, value in (("title", title), ("query", query), ("category", category), ("tags", tags)):
        path = nul_path(value, name)
        if path is not None and name not in errors:
            errors[name] = [NUL_MESSAGE if path == name else f"{NUL_MESSAGE} Found in {path}."]
    if errors:
        raise InvalidInput("Invalid case.", errors=errors)


def _snapshot(case: Case, *, author: str, reason: str) -> CaseVersion:
    version = CaseVersion(
        case=case,
        version=case.version,
        title=case.title,
        query=case.query,
        plan=case.plan,
        category=case.category,
        tags=case.tags,
        author=author,
        reason=reason,
    )
    version.full_clean(exclude=["case"])
    version.save()
    return version


def case_create(
    *,
    title: str,
    query: str,
    plan: Any,
    actor: str,
    category: str = "",
    tags: Sequence[str] = (),
    status: str = CaseStatus.ACTIVE,
    review_state: str = ReviewState.APPROVED,
    case_id: UUID | None = None,
) -> Case:
    """A new case at version 1. `review_state=pending` keeps it out of retrieval and planning
    until a reviewer approves it (`case_review_approve`)."""
    validate_case_content(title=title, query=query, plan=plan, category=category, tags=tags)
    if status not in CaseStatus.values:
        raise InvalidInput("Invalid case.", errors={"status": [f"One of {CaseStatus.values}."]})
    if review_state not in (ReviewState.APPROVED, ReviewState.PENDING):
        raise InvalidInput("Invalid case.", errors={"review_state": ["A new case is approved or pending."]})
    # Embedding is CPU work: do it before the transaction so no lock waits on it. A pending case is
    # out of vector search until approved, so its vector waits for the approval (`_case_review`):
    # a session's end does not pay the model's CPU for a case that no search may read yet.
    embedding = embed_text(search_text(title, query)) if review_state == ReviewState.APPROVED else None
    with transaction.atomic():
        case = Case(
            title=title.strip(),
            query=query.strip(),
            plan=plan,
            category=category.strip(),
            tags=list(tags),
            status=status,
            review_state=review_state,
            embedding=embedding,
            search_length=search_length_of(title, query),
            updated_by=actor,
        )
        if case_id is not None:
            case.id = case_id
        case.full_clean(exclude=["embedding"])
        case.save(force_insert=True)
        case_terms_index(case, new=True)
        _snapshot(case, author=actor, reason="manual")
        bank_changed()
    return case


def case_update(
    *,
    case: Case,
    actor: str,
    reason: str = "manual",
    expected_version: int | None = None,
    **changes: Any,
) -> Case:
    """Edit a case. A change to title, query or plan makes a new version with a snapshot.

    `expected_version` guards against lost updates: if the case moved on since the caller read
    it, nothing is written and `Conflict` is raised.
    """
    unknown = set(changes) - {"title", "query", "plan", "category", "tags"}
    if unknown:
        raise InvalidInput("Invalid case.", errors={f: ["This field cannot be edited."] for f in unknown})
    merged = {
        "title": changes.get("title", case.title),
        "query": changes.get("query", case.query),
        "plan": changes.get("plan", case.plan),
        "category": changes.get("category", case.category),
        "tags": changes.get("tags", case.tags),
    }
    validate_case_content(**merged)
    text_changed = (merged["title"], merged["query"]) != (case.title, case.query)
    embedding = embed_text(search_text(merged["title"], merged["query"])) if text_changed else None

    with transaction.atomic():
        locked = Case.objects.select_for_update().defer("embedding").filter(pk=case.pk).first()
        if locked is None:
            raise NotFound("Case not found.")
        if expected_version is not None and locked.version != expected_version:
            raise Conflict(
                f"The case is at version {locked.version}, not {expected_version}; "
                "reload it and apply the change again.",
                errors={"version": [f"Current version is {locked.version}."]},
            )
        content_changed = any(merged[f] != getattr(locked, f) for f in CONTENT_FIELDS)
        fields = ["category", "tags", "updated_at", "updated_by"]
        for field, value in merged.items():
            setattr(locked, field, value.strip() if isinstance(value, str) else value)
        locked.updated_at = timezone.now()
        locked.updated_by = actor
        if content_changed:
            locked.version = _next_version(locked)
            fields += ["title", "query", "plan", "version", "search_length"]
            locked.search_length = search_length_of(locked.title, locked.query)
        if embedding is not None:
            locked.embedding = embedding
            fields.append("embedding")
        locked.full_clean(exclude=["embedding"])
        locked.save(update_fields=fields)
        if content_changed:
            case_terms_index(locked)
            _snapshot(locked, author=actor, reason=reason)
        bank_changed()
    return locked


def _next_version(case: Case) -> int:
    """The number a new snapshot takes: past the current version and past any candidate
    snapshot an experiment serves beside it (`case_version_propose`), so numbers never repeat."""
    newest = CaseVersion.objects.filter(case_id=case.pk).aggregate(newest=Max("version"))["newest"] or 0
    return max(case.version, newest) + 1


def case_version_propose(*, case: Case, actor: str, reason: str, expected_version: int, plan: Any) -> CaseVersion:
    """Snapshot a candidate version with a new plan WITHOUT making it current: the case keeps
    serving `expected_version`, and an experiment serves the candidate beside it. `Conflict`
    when the case moved on from `expected_version` or the plan is the current one."""
    with transaction.atomic():
        locked = Case.objects.select_for_update().defer("embedding").filter(pk=case.pk).first()
        if locked is None:
            raise NotFound("Case not found.")
        if locked.version != expected_version:
            raise Conflict(
                f"The case is at version {locked.version}, not {expected_version}; "
                "reload it and apply the change again.",
                errors={"version": [f"Current version is {locked.version}."]},
            )
        validate_case_content(title=locked.title, query=locked.query, plan=plan, category=locked.category,
                              tags=locked.tags)
        if plan == locked.plan:
            raise Conflict("The proposed plan is the current one.", errors={"plan": ["Same as the current plan."]})
        candidate = CaseVersion(
            case=locked, version=_next_version(locked), title=locked.title, query=locked.query, plan=plan,
            category=locked.category, tags=locked.tags, author=actor[:150], reason=reason[:200],
        )
        candidate.full_clean(exclude=["case"])
        candidate.save()
    return candidate


def case_version_promote(*, case: Case, version: int, actor: str, expected_version: int) -> Case:
    """Make a candidate snapshot (`case_version_propose`) the current version, keeping its
    number: the runs logged against it while it was a candidate stay its runs."""
    snapshot = CaseVersion.objects.filter(case_id=case.pk, version=version).first()
    if snapshot is None:
        raise NotFound(f"Version {version} of this case does not exist.")
    text_changed = (snapshot.title, snapshot.query) != (case.title, case.query)
    embedding = embed_text(search_text(snapshot.title, snapshot.query)) if text_changed else None
    with transaction.atomic():
        locked = Case.objects.select_for_update().defer("embedding").get(pk=case.pk)
        if locked.version != expected_version:
            raise Conflict(
                f"The case is at version {locked.version}, not {expected_version}.",
                errors={"version": [f"Current version is {locked.version}."]},
            )
        if version <= locked.version:
            raise Conflict(f"Version {version} is not newer than the current v{locked.version}.")
        for field in ("title", "query", "plan", "category", "tags"):
            setattr(locked, field, getattr(snapshot, field))
        locked.version = version
        locked.search_length = search_length_of(locked.title, locked.query)
        locked.updated_at = timezone.now()
        locked.updated_by = actor
        fields = ["title", "query", "plan", "category", "tags", "version", "search_length", "updated_at", "updated_by"]
        if embedding is not None:
            locked.embedding = embedding
            fields.append("embedding")
        locked.full_clean(exclude=["embedding"])
        locked.save(update_fields=fields)
        if text_changed:
            case_terms_index(locked)
        bank_changed()
    return locked


RESTORE_PERMISSION = "casebank.run_consolidation"


def case_set_status(
    *, case: Case, status: str, actor: str, reason: str = "", restoring: bool = False, may_restore: bool = True
) -> Case:
    """Move a case through its lifecycle; every move is audited in the same transaction.

    `restoring` (consolidation's restore only) lets an archived case return to whatever
    status it had before it was archived, not only to `active`. `may_restore=False` (a caller
    without `run_consolidation`) refuses any move out of `archived`: checked on the locked row,
    so a case archived meanwhile is not un-archived by someone who may not restore it."""
    if status not in CaseStatus.values:
        raise InvalidInput("Invalid status.", errors={"status": [f"One of {CaseStatus.values}."]})
    with transaction.atomic():
        locked = Case.objects.select_for_update().defer("embedding").get(pk=case.pk)
        if locked.status == status:
            return locked
        allowed = STATUS_TRANSITIONS[locked.status]
        if restoring and locked.status == CaseStatus.ARCHIVED:
            allowed = set(CaseStatus.values) - {CaseStatus.ARCHIVED}
        if status not in allowed:
            raise Conflict(
                f"A case cannot go from {locked.status} to {status}.",
                errors={"status": [f"Allowed from {locked.status}: {sorted(STATUS_TRANSITIONS[locked.status])}."]},
            )
        if locked.status == CaseStatus.ARCHIVED and not may_restore:
            raise Forbidden(
                f"Taking a case out of the archive needs the {RESTORE_PERMISSION} permission.",
                errors={"status": [f"Restoring needs {RESTORE_PERMISSION}."]},
            )
        CaseStatusChange.objects.create(
            case=locked, from_status=locked.status, to_status=status, reason=reason[:500], actor=actor
        )
        locked.status = status
        locked.updated_at = timezone.now()
        locked.updated_by = actor
        locked.save(update_fields=["status", "updated_at", "updated_by"])
        bank_changed()
    return locked


def case_review_approve(*, case: Case, actor: str, note: str = "") -> Case:
    """Accept a pending case as a reusable plan: from now on it is retrieved and planned with."""
    return _case_review(case=case, to_state=ReviewState.APPROVED, actor=actor, note=note)


def case_review_reject(*, case: Case, actor: str, note: str) -> Case:
    """Refuse a pending case: it stays (its logs and history too) but is never retrieved."""
    if not note.strip():
        raise InvalidInput("A note is required to reject.", errors={"note": ["Say why the case is rejected."]})
    return _case_review(case=case, to_state=ReviewState.REJECTED, actor=actor, note=note)


def _case_review(*, case: Case, to_state: str, actor: str, note: str) -> Case:
    with transaction.atomic():
        locked = Case.objects.select_for_update().defer("embedding").filter(pk=case.pk).first()
        if locked is None:
            raise NotFound("Case not found.")
        if locked.review_state != ReviewState.PENDING:
            raise Conflict(
                f"The case is {locked.review_state}, not pending review.",
                errors={"review_state": [f"Only pending cases are reviewed; this one is {locked.review_state}."]},
            )
        change = CaseReviewChange(
            case=locked, from_state=locked.review_state, to_state=to_state, note=note.strip()[:500], actor=actor[:150]
        )
        change.full_clean(exclude=["case"])
        change.save()
        locked.review_state = to_state
        locked.updated_at = timezone.now()
        locked.updated_by = actor
        fields = ["review_state", "updated_at", "updated_by"]
        if to_state == ReviewState.APPROVED:
            # Its vector, from the text being approved (in the lock: an edit cannot slip between).
            locked.embedding = embed_text(search_text(locked.title, locked.query))
            fields.append("embedding")
        locked.save(update_fields=fields)
        bank_changed()
    return locked


def case_rollback(*, case: Case, to_version: int, actor: str) -> Case:
    """Make a new version whose content is an old snapshot's (history is never rewritten)."""
    snapshot = CaseVersion.objects.filter(case=case, version=to_version).first()
    if snapshot is None:
        raise NotFound(f"Version {to_version} of this case does not exist.")
    if to_version == case.version:
        raise Conflict(f"The case is already at version {to_version}.")
    return case_update(
        case=case,
        actor=actor,
        reason=f"rollback to v{to_version}",
        title=snapshot.title,
        query=snapshot.query,
        plan=snapshot.plan,
        category=snapshot.category,
        tags=snapshot.tags,
    )


def case_record_use(*, case_ids: Iterable[UUID | str], used_at: datetime | None = None, times: int = 1) -> int:
    """Count `times` uses of each case (a planner returned it). One UPDATE, no long row locks."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return 0
    return Case.objects.filter(pk__in=ids).update(
        usage_count=F("usage_count") + times, last_used_at=used_at or timezone.now()
    )


class CaseMetrics(NamedTuple):
    """What an analysis stores on its case (see the fields of `Case`)."""

    success_rate: float | None
    run_count: int
    reuse_helped: float = 0.0
    reuse_harmed: float = 0.0


def case_update_metrics(*, case_id: UUID, metrics: CaseMetrics) -> None:
    """Store analysis results on the case; never a content edit, so never a new version."""
    Case.objects.filter(pk=case_id).update(**metrics._asdict())
    bank_changed()


def case_update_metrics_many(*, metrics: dict[UUID, CaseMetrics]) -> int:
    """`case_update_metrics` for a whole reflection batch.

    On PostgreSQL one UPDATE ... FROM unnest(arrays): Django's bulk_update builds a CASE with
    one branch per row, which PostgreSQL evaluates row by row (quadratic in the batch size).
    """
    if not metrics:
        return 0
    updated = _update_metrics_rows(metrics)
    bank_changed()  # after the write: outside a transaction on_commit runs at once
    return updated


def _update_metrics_rows(metrics: dict[UUID, CaseMetrics]) -> int:
    if connection.vendor != "postgresql":
        cases = [Case(pk=case_id, **row._asdict()) for case_id, row in metrics.items()]
        return Case.objects.bulk_update(cases, list(CaseMetrics._fields), batch_size=500)
    table = Case._meta.db_table
    rows = list(metrics.values())
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} AS c
                SET success_rate = m.rate, run_count = m.runs, reuse_helped = m.helped, reuse_harmed = m.harmed
                FROM unnest(%s::uuid[], %s::float8[], %s::int[], %s::float8[], %s::float8[])
                     AS m(id, rate, runs, helped, harmed)
                WHERE c.id = m.id""",
            [uuid_array(metrics), [r.success_rate for r in rows], [r.run_count for r in rows],
             [r.reuse_helped for r in rows], [r.reuse_harmed for r in rows]],
        )
        return cursor.rowcount
