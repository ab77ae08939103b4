from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from casebank.search.fields import EmbeddingField


class CaseStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    WARNING = "warning", "Warning"
    DEPRECATED = "deprecated", "Deprecated"
    ARCHIVED = "archived", "Archived"


# Retrieval leaves these out unless the caller asks for them.
HIDDEN_STATUSES = (CaseStatus.DEPRECATED, CaseStatus.ARCHIVED)


class ReviewState(models.TextChoices):
    """Whether a person has accepted the case as a reusable plan (SPEC 5: "pending review").

    Separate from the lifecycle `status`, which reflection moves by success rate: only a
    reviewer (`casebank.cases.services.case_review_approve`) makes a pending case approved, and only
    approved cases are retrieved or planned with.
    """

    APPROVED = "approved", "Approved"
    PENDING = "pending", "Pending review"
    REJECTED = "rejected", "Rejected"


class Case(models.Model):
    """A reusable task and the plan that solved it.

    Rows are written only through `casebank.cases.services`: content edits bump `version` and
    snapshot a `CaseVersion`; metric updates (success rate, usage) never do.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    query = models.TextField(help_text="The task this case solves; embedded for retrieval.")
    plan = models.JSONField(help_text="Text, or a list of steps each naming its agent(s).")
    category = models.CharField(max_length=200, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    embedding = EmbeddingField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, editable=False)
    # Number of BM25 tokens in title + query: the document length in the BM25 formula.
    search_length = models.PositiveIntegerField(default=0, editable=False)
    status = models.CharField(max_length=20, choices=CaseStatus.choices, default=CaseStatus.ACTIVE)
    review_state = models.CharField(
        # db_default too: bulk loads that bypass the ORM (COPY in the benchmarks) get approved cases.
        max_length=20, choices=ReviewState.choices, default=ReviewState.APPROVED, db_default=ReviewState.APPROVED,
        editable=False,
        help_text="Only approved cases are retrieved and reused; new cases from sessions start pending.",
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    success_rate = models.FloatField(null=True, blank=True, editable=False)
    run_count = models.PositiveIntegerField(
        default=0, editable=False, help_text="Executions behind the last analysis."
    )
    usage_count = models.PositiveIntegerField(default=0, editable=False)
    # Reuse value (issue #18): successful and failed runs of the plan, each weighted by its age
    # (half-life REFLECTION_HALF_LIFE_DAYS), as of the last analysis. Ranking reads them.
    # db_default too: bulk loads that bypass the ORM (COPY in the benchmarks) start at no record.
    reuse_helped = models.FloatField(default=0.0, db_default=0.0, editable=False,
                                     help_text="Recent runs that succeeded, time-decayed.")
    reuse_harmed = models.FloatField(default=0.0, db_default=0.0, editable=False,
                                     help_text="Recent runs that failed, time-decayed.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_by = models.CharField(max_length=150, blank=True, default="", editable=False)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            # The API and admin list: filter by status, sort by usage / success / last use.
            models.Index(fields=["status", "-usage_count"], name="case_status_usage_idx"),
            models.Index(fields=["status", "-last_used_at"], name="case_status_lastused_idx"),
            models.Index(fields=["category"], name="case_category_idx"),
            # bm25_stats: COUNT(*) and AVG(search_length) as an index-only scan; the table itself
            # is wide (the embedding is stored inline), so a sequential scan of 100,000 cases
            # takes ~250 ms, paid by the first search after every case write.
            models.Index(fields=["search_length"], name="case_search_length_idx"),
            # The review queue: WHERE review_state = 'pending' ORDER BY created_at. Partial: the
            # queue is a handful of rows among all cases.
            models.Index(
                fields=["created_at"], condition=models.Q(review_state="pending"), name="case_pending_review_idx"
            ),
        ]
        permissions = [
            ("rollback_case", "Can roll a case back to an earlier version"),
            ("review_case", "Can approve or reject cases pending review"),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"


class PendingCaseManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(review_state=ReviewState.PENDING)


class PendingCase(Case):
    """The case review queue (new cases from sessions): its own admin screen."""

    objects: ClassVar[PendingCaseManager] = PendingCaseManager()

    class Meta:
        proxy = True
        verbose_name = "case pending review"
        verbose_name_plural = "cases pending review (review queue)"


class CaseVersion(models.Model):
    """Immutable snapshot of one version of a case, with who made it and why."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    query = models.TextField()
    plan = models.JSONField()
    category = models.CharField(max_length=200, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    author = models.CharField(max_length=150, blank=True, default="")
    reason = models.CharField(max_length=200, help_text="manual, suggestion #N, rollback to vN")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["case", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["case", "version"], name="caseversion_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.case_id} v{self.version}"


class CaseStatusChange(models.Model):
    """Audit row for every lifecycle change, written in the same transaction as the change."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, choices=CaseStatus.choices)
    to_status = models.CharField(max_length=20, choices=CaseStatus.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    actor = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.from_status} -> {self.to_status}"


class CaseReviewChange(models.Model):
    """Audit row for every review decision, written in the same transaction as the decision."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="review_changes")
    from_state = models.CharField(max_length=20, choices=ReviewState.choices)
    to_state = models.CharField(max_length=20, choices=ReviewState.choices)
    note = models.CharField(max_length=500, blank=True, default="")
    actor = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.from_state} -> {self.to_state}"
