"""Reads of cases: the filtered, sorted list, one case, its version history."""
from __future__ import annotations

from uuid import UUID

from django.db.models import F, OrderBy, Q, QuerySet

from casebank.models import Case, CaseVersion
from core.errors import NotFound

# Cases never analysed (null rate) or never used come last in either direction, on both
# databases (PostgreSQL puts NULLs first when descending, SQLite first when ascending).
CASE_SORTS: dict[str, tuple[str | OrderBy, ...]] = {
    "usage": ("-usage_count", "-updated_at"),
    "-usage": ("usage_count", "-updated_at"),
    "success": (F("success_rate").desc(nulls_last=True), "-updated_at"),
    "-success": (F("success_rate").asc(nulls_last=True), "-updated_at"),
    "last_used": (F("last_used_at").desc(nulls_last=True), "-updated_at"),
    "-last_used": (F("last_used_at").asc(nulls_last=True), "-updated_at"),
    "updated": ("-updated_at",),
    "created": ("-created_at",),
}


def case_list(*, status: str | None = None, category: str | None = None, review_state: str | None = None,
              sort: str = "updated") -> QuerySet[Case]:
    cases = Case.objects.defer("embedding")
    if status:
        cases = cases.filter(status=status)
    if review_state:
        cases = cases.filter(review_state=review_state)
    if category:
        # A category is a path: "analytics" also lists "analytics/sales".
        cases = cases.filter(Q(category=category) | Q(category__startswith=f"{category}/"))
    return cases.order_by(*CASE_SORTS[sort])


def case_get(case_id: UUID | str) -> Case:
    case = Case.objects.defer("embedding").filter(pk=case_id).first()
    if case is None:
        raise NotFound("Case not found.")
    return case


def case_versions(case: Case) -> QuerySet[CaseVersion]:
    return CaseVersion.objects.filter(case=case).order_by("-version")
