from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from casebank.fields import EmbeddingField


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
    reviewer (`casebank.services.case_review_approve`) makes a pending case approved, and only
    approved cases are retrieved or planned with.
    """

    APPROVED = "approved", "Approved"
    PENDING = "pending", "Pending review"
    REJECTED = "rejected", "Rejected"


class Case(models.Model):
    """A reusable task and the plan that solved it.

    Rows are written only through `casebank.services`: content edits bump `version` and
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

    objects = PendingCaseManager()

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


class CaseTerm(models.Model):
    """Inverted index for BM25: one row per (case, term) with its frequency.

    Kept in the database so that BM25 works the same on SQLite and PostgreSQL, updates with
    every case write, and scales with the table rather than with process memory.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="terms")
    term = models.CharField(max_length=64)
    tf = models.PositiveIntegerField()
    # The query-independent part of the term's BM25 score in this case (tf saturated and
    # normalised by length), so a search reads each term's postings best-first.
    impact = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "term"], name="caseterm_unique_term")
        ]
        indexes = [
            # BM25 scoring: WHERE term = ? ORDER BY impact DESC LIMIT n, per query term;
            # covering on PostgreSQL, so the postings come from the index alone.
            models.Index(fields=["term", "-impact"], include=["case"], name="caseterm_term_impact_idx"),
        ]


class CaseTermStat(models.Model):
    """BM25 document frequency of a term: how many cases hold it (all statuses, like the corpus size).

    Kept by `casebank.services` in the transaction that writes the term's postings, so a search
    reads df by primary key instead of counting a common term's postings (tens of thousands of
    index entries over 100,000 cases). `case_term_stats_rebuild` recounts it after a bulk load.
    """

    term = models.CharField(max_length=64, primary_key=True)
    # Signed on purpose: a decrement is one upsert adding -1, and a row that drops to 0 is deleted.
    df = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.term}: {self.df}"


class ApiTier(models.TextChoices):
    STANDARD = "standard", "Standard (100 requests/min)"
    PREMIUM = "premium", "Premium (1,000 requests/min)"


class ApiKey(models.Model):
    """A per-client API key. Only a SHA-256 digest is stored; the key is shown once."""

    name = models.CharField(max_length=100, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="The key acts with this user's permissions.",
    )
    prefix = models.CharField(max_length=12, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    tier = models.CharField(max_length=20, choices=ApiTier.choices, default=ApiTier.STANDARD)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ArchiveReason(models.TextChoices):
    LOW_PERFORMANCE = "low_performance", "Low performance"
    DUPLICATE = "duplicate", "Duplicate"
    INACTIVE = "inactive", "Inactive"
    MANUAL = "manual", "Manual"


class CaseArchive(models.Model):
    """Snapshot of a case when consolidation (or a person) archived it, so it can be restored."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="archives")
    reason = models.CharField(max_length=20, choices=ArchiveReason.choices)
    detail = models.CharField(max_length=500, blank=True, default="")
    # The case's content and metrics at archive time, and the status it is restored to.
    snapshot = models.JSONField()
    merged_into = models.ForeignKey(
        Case, on_delete=models.SET_NULL, null=True, blank=True, related_name="merged_archives"
    )
    usage_moved = models.PositiveIntegerField(default=0, help_text="Usage added to `merged_into`.")
    actor = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        permissions = [("run_consolidation", "Can apply consolidation and restore archived cases")]
        indexes = [
            # Restore: the latest open archive of a case.
            models.Index(fields=["case", "-created_at"], name="archive_case_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} archived ({self.reason})"
