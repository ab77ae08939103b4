"""Experiments: an approved suggestion's candidate version served beside the current one to a
share of traffic, decided by the sequential rule (`reflection.experiments.sequential`), and the
looks taken at it (the chart on its admin page).

Rows are written only through `reflection.experiments.services`.
"""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from casebank.cases.models import Case
from reflection.suggestions.models import Suggestion


class ExperimentStatus(models.TextChoices):
    RUNNING = "running", "Running (canary)"
    AWAITING_REVIEW = "awaiting_review", "Better: awaiting a reviewer to promote"
    PROMOTED = "promoted", "Promoted (candidate is the current version)"
    ROLLED_BACK = "rolled_back", "Rolled back (candidate retired)"
    INCONCLUSIVE = "inconclusive", "Inconclusive (maximum sample, no difference)"
    SUPERSEDED = "superseded", "Stopped (the case was edited meanwhile)"


# The candidate is served only while the experiment runs.
SERVING_STATUSES = (ExperimentStatus.RUNNING,)


class Experiment(models.Model):
    """One approved suggestion's experiment: `candidate_version` (a snapshot that is not the
    case's current version) against `base_version`, on `candidate_share` of assignment keys."""

    suggestion = models.OneToOneField(Suggestion, on_delete=models.CASCADE, related_name="experiment")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="experiments")
    base_version = models.PositiveIntegerField(help_text="The current version, served to the other keys.")
    candidate_version = models.PositiveIntegerField(help_text="The suggestion's revised plan, as a case version.")
    candidate_share = models.FloatField(
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of assignment keys served the candidate (0..1).",
    )
    status = models.CharField(max_length=20, choices=ExperimentStatus.choices, default=ExperimentStatus.RUNNING)
    # The base version's cumulative runs when the experiment started: the current arm counts
    # only what came after (both arms in the same period), exactly, even after retention.
    base_runs_before = models.PositiveIntegerField(default=0)
    base_successes_before = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True, default="", help_text="A reviewer, or 'reflection'.")
    decision_note = models.TextField(blank=True, default="")
    # The last look's `SequentialDecision.as_dict()`: statistic, counts, interval, outcome.
    detail = models.JSONField(default=dict, blank=True)
    flagged = models.BooleanField(default=False, help_text="Needs a person: inconclusive, or better awaiting review.")
    # The ramp this experiment follows (EXPERIMENT_RAMP when it started): increasing shares.
    ramp = models.JSONField(default=list, blank=True)
    ramp_held = models.BooleanField(default=False, help_text="A person holds the share: no automatic step.")

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # Serving and ingestion: WHERE status = 'running' AND case_id IN (...).
            models.Index(fields=["status", "case"], name="experiment_status_case_idx"),
        ]

    def __str__(self) -> str:
        return f"Experiment #{self.pk}: v{self.candidate_version} vs v{self.base_version} ({self.get_status_display()})"


class ExperimentStep(models.Model):
    """One step of an experiment's ramp: the share served from `started_at` on, and both
    versions' cumulative counts at that moment, so each step's own counts (the next step's
    snapshot, or the current totals, less this one) survive `purge_logs` like the totals do."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveSmallIntegerField()
    share = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    started_at = models.DateTimeField(default=timezone.now)
    started_by = models.CharField(max_length=150, help_text="A reviewer, or 'reflection' (the ramp rule).")
    reason = models.TextField(blank=True, default="")
    base_runs_at_start = models.PositiveIntegerField()
    base_successes_at_start = models.PositiveIntegerField()
    candidate_runs_at_start = models.PositiveIntegerField()
    candidate_successes_at_start = models.PositiveIntegerField()

    class Meta:
        ordering = ["experiment", "number"]
        constraints = [models.UniqueConstraint(fields=["experiment", "number"], name="experimentstep_unique_number")]

    def __str__(self) -> str:
        return f"#{self.experiment_id} step {self.number}: {self.share:.0%}"


class ExperimentLook(models.Model):
    """One evaluation of an experiment: the cumulative counts of both arms and the statistic."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="looks")
    looked_at = models.DateTimeField(default=timezone.now)
    current_runs = models.PositiveIntegerField()
    current_successes = models.PositiveIntegerField()
    candidate_runs = models.PositiveIntegerField()
    candidate_successes = models.PositiveIntegerField()
    likelihood_ratio = models.FloatField()
    p_value = models.FloatField()
    outcome = models.CharField(max_length=20)
    # The ramp step and share at this look (the chart marks where the share changed).
    step = models.PositiveSmallIntegerField(default=1)
    share = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "looked_at"]
        indexes = [models.Index(fields=["experiment", "looked_at"], name="experimentlook_time_idx")]

    def __str__(self) -> str:
        return f"#{self.experiment_id} at {self.looked_at:%Y-%m-%d %H:%M}: {self.outcome}"
