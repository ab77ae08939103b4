"""Archive snapshots of consolidated cases, with the reason, so that they can be restored."""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from casebank.cases.models import Case


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
