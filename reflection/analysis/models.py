"""Reflection results: analyses (history per case), batch runs, per-case watermarks, roll-ups.

Rows are written only through `reflection.analysis.services`.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from casebank.cases.models import Case
from reflection.analysis.types import CaseAnalysisData


class ReflectionRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class ReflectionTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Daily schedule"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Management command"
    EARLY = "early", "100 new logs for a case"


class ReflectionRun(models.Model):
    """One batch of analyses over a snapshot of the log (everything ingested up to `snapshot_at`)."""

    status = models.CharField(
        max_length=20, choices=ReflectionRunStatus.choices, default=ReflectionRunStatus.QUEUED
    )
    trigger = models.CharField(max_length=20, choices=ReflectionTrigger.choices, default=ReflectionTrigger.API)
    requested_by = models.CharField(max_length=150, blank=True, default="")
    # Restrict the run to these cases (early trigger, `reflect --case`); empty = all with new logs.
    case_ids = models.JSONField(default=list, blank=True)
    window_days = models.PositiveSmallIntegerField(default=30)
    snapshot_at = models.DateTimeField(null=True, blank=True)
    since = models.DateTimeField(null=True, blank=True, help_text="Logs ingested after this were new.")
    cases_total = models.PositiveIntegerField(default=0)
    cases_analysed = models.PositiveIntegerField(default=0)
    cases_skipped = models.PositiveIntegerField(
        default=0, help_text="Held by another run at the time; the next run picks them up."
    )
    cases_failed = models.PositiveIntegerField(default=0)
    warnings_set = models.PositiveIntegerField(default=0)
    warnings_cleared = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started this run.")
    retry_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the sweeper hands the run out again if it has not finished; empty when finished or "
                  "run in-process (manage.py reflect).",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The next run's starting point: latest completed run without skipped cases.
            models.Index(fields=["status", "-snapshot_at"], name="run_status_snapshot_idx"),
            # The sweeper's `WHERE retry_at <= now ORDER BY retry_at`: only unfinished queued runs.
            models.Index(fields=["retry_at"], condition=models.Q(retry_at__isnull=False), name="run_retry_at_idx"),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} ({self.status})"


class CaseAnalysis(models.Model):
    """One stored analysis of a case: the full JSON plus the figures charts read."""

    # No index of its own: `analysis_case_created_idx` starts with the case and serves lookups by
    # case; one index fewer to fill for the 10,000 analyses a batch run stores.
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="analyses", db_index=False)
    run = models.ForeignKey(
        ReflectionRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="analyses"
    )
    window_days = models.PositiveSmallIntegerField()
    total_executions = models.PositiveIntegerField()
    successes = models.PositiveIntegerField()
    success_rate = models.FloatField(null=True, blank=True)
    weighted_success_rate = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    slow = models.BooleanField(default=False)
    confidence = models.CharField(max_length=20)
    anomaly_count = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(help_text="The analysis exactly as the API returns it.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "case analyses"
        indexes = [
            # The trend chart and "latest analysis": WHERE case_id = ? ORDER BY created_at DESC.
            models.Index(fields=["case", "-created_at"], name="analysis_case_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} @ {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def analysis(self) -> CaseAnalysisData:
        """`result` with its type: stored only by `reflection.analysis.services` from the engine."""
        return self.result


class CaseReflectionState(models.Model):
    """Per-case watermark and claim, so that two runs never analyse the same case at once.

    A run claims a case with a conditional UPDATE (one row changed = ours) and, when done,
    moves `analysed_through` to its snapshot and releases the claim.

    `suggestion_due_at` is set when a weak case's suggestion had to wait for the shared LLM
    budget: `reflection.suggestions.deferral` retries it from then on (docs/suggestions.md).
    `suggestion_refused` keeps why the latest proposal for the case was refused as no news
    (`reflection.suggestions.novelty`), until a suggestion is made.
    """

    case = models.OneToOneField(Case, on_delete=models.CASCADE, primary_key=True, related_name="+")
    analysed_through = models.DateTimeField(null=True, blank=True)
    # A lease more than a relation, written for every case of every run: no index and no
    # database constraint, so claiming is one index fewer to fill, no key check per row, and
    # releasing an in-place (HOT) update; ~0.2 s per 10,000 cases. Django still clears it when
    # a run is deleted, and a claim of a run gone some other way lapses after STALE_CLAIM.
    claimed_by = models.ForeignKey(ReflectionRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                   db_index=False, db_constraint=False)
    claimed_at = models.DateTimeField(null=True, blank=True)
    suggestion_due_at = models.DateTimeField(null=True, blank=True)
    # A database default too: run claims insert state rows with raw SQL naming only their columns.
    suggestion_refused = models.CharField(max_length=500, blank=True, default="", db_default="")
    suggestion_refused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The deferred-suggestion sweep: WHERE suggestion_due_at <= now ORDER BY suggestion_due_at;
            # partial, so the index holds only the few waiting cases, not every case.
            models.Index(
                fields=["suggestion_due_at"],
                condition=models.Q(suggestion_due_at__isnull=False),
                name="reflstate_suggestion_due_idx",
            ),
        ]


class DailyCaseRollup(models.Model):
    """What retention keeps of one case's raw logs of one (UTC) day; `case` is null for the
    day's runs without a case (one such row per day), so totals survive retention too.

    `latency_histogram` maps a log-scale bucket index (see `reflection.analysis.engine.stats`)
    to a count; `errors` maps error_type to {count, example, templates: {template: count}};
    `versions` maps a case version to {runs, successes}, so that verification can still compare
    versions once their raw logs are gone.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, null=True, blank=True, related_name="daily_rollups")
    day = models.DateField()
    runs = models.PositiveIntegerField()
    successes = models.PositiveIntegerField()
    latency_sum_ms = models.FloatField()
    latency_sq_sum_ms = models.FloatField(help_text="Sum of squares, for variance in anomaly tests.")
    latency_histogram = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=dict, blank=True)
    # Empty on days rolled up before versions were counted (issue #15).
    versions = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["case", "day"]
        constraints = [
            models.UniqueConstraint(fields=["case", "day"], name="rollup_unique_case_day"),
            # NULLs are distinct in the constraint above: one case-less row per day needs its own.
            models.UniqueConstraint(fields=["day"], condition=models.Q(case__isnull=True),
                                    name="rollup_unique_caseless_day"),
        ]
        indexes = [
            # Windowed analyses over old days: WHERE day >= ? [AND case_id = ?].
            models.Index(fields=["day"], name="rollup_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.day}"
