"""Improvement suggestions, their review decisions (audit) and the pending-review queue.

Rows are written only through `reflection.suggestions` services.
"""
from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from casebank.cases.models import Case


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    # With experiments on, approval starts a canary; the experiment says how it went.
    APPROVED = "approved", "Approved"
    ROLLED_BACK = "rolled_back", "Rolled back"
    REJECTED = "rejected", "Rejected"
    STALE = "stale", "Stale (case changed)"


class SuggestionSource(models.TextChoices):
    LLM = "llm", "LLM"
    RULES = "rules", "Rules (statistics)"


class Verification(models.TextChoices):
    PENDING = "pending", "Pending (not enough runs)"
    IMPROVED = "improved", "Improved"
    NO_CHANGE = "no_change", "No significant change"
    REGRESSED = "regressed", "Regressed"


class Suggestion(models.Model):
    """A proposed revision of a case's plan, made against `base_version` of the case."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="suggestions")
    base_version = models.PositiveIntegerField(help_text="The case version the suggestion was made against.")
    status = models.CharField(max_length=20, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING)
    source = models.CharField(max_length=20, choices=SuggestionSource.choices)
    rationale = models.TextField()
    changes = models.JSONField(default=list, help_text="What changes and why, one entry per change.")
    current_plan = models.JSONField(help_text="The plan of `base_version`, kept for the diff.")
    revised_plan = models.JSONField()
    expected_effect = models.TextField(blank=True, default="")
    confidence = models.FloatField(help_text="0..1, as stated by the LLM or the rules.")
    # What the suggestion was based on: the analysis, error groups, failing runs, similar cases.
    evidence = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=100, blank=True, default="")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    fallback_reason = models.CharField(max_length=300, blank=True, default="", help_text="Why rules were used.")
    created_at = models.DateTimeField(default=timezone.now)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, default="")
    stale_reason = models.CharField(max_length=300, blank=True, default="")
    applied_version = models.PositiveIntegerField(null=True, blank=True)
    verification = models.CharField(max_length=20, choices=Verification.choices, blank=True, default="")
    verification_detail = models.JSONField(default=dict, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    rolled_back_version = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("approve_suggestion", "Can approve or reject improvement suggestions")]
        indexes = [
            # The review queue and the API list: WHERE status = ? [AND case_id = ?] ORDER BY created_at.
            models.Index(fields=["status", "-created_at"], name="suggestion_status_idx"),
            models.Index(fields=["case", "status"], name="suggestion_case_status_idx"),
        ]

    def __str__(self) -> str:
        return f"Suggestion #{self.pk} (against case v{self.base_version}, {self.get_status_display().lower()})"


class PendingSuggestionManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(status=SuggestionStatus.PENDING)


class PendingSuggestion(Suggestion):
    """The review queue: the approval console's own admin screen."""

    objects: ClassVar[PendingSuggestionManager] = PendingSuggestionManager()

    class Meta:
        proxy = True
        verbose_name = "pending suggestion"
        verbose_name_plural = "pending suggestions (approval queue)"


class DecisionAction(models.TextChoices):
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"
    STALE = "stale", "Marked stale"
    ROLLBACK = "rollback", "Rolled back"
    PROMOTE = "promote", "Promoted after its experiment"


class SuggestionDecision(models.Model):
    """Audit row for every decision on a suggestion, written in the same transaction."""

    suggestion = models.ForeignKey(Suggestion, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=20, choices=DecisionAction.choices)
    from_status = models.CharField(max_length=20, choices=SuggestionStatus.choices)
    to_status = models.CharField(max_length=20, choices=SuggestionStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, default="")
    note = models.TextField(blank=True, default="")
    case_version = models.PositiveIntegerField(null=True, blank=True, help_text="Case version after the decision.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"#{self.suggestion_id} {self.action} by {self.actor_name}"
