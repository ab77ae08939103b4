"""Supervisor sessions (with their event stream) and the knowledge documents workers search."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from casebank.access.models import ApiKey
from casebank.cases.models import Case


class SessionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


FINISHED_STATUSES = (SessionStatus.COMPLETED, SessionStatus.FAILED)


class Session(models.Model):
    """One user query taken through plan -> execute -> evaluate -> respond.

    Written only through `agents.sessions.services`; every change of phase also appends a
    `SessionEvent`, which is both the audit trail and what the SSE stream replays.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    query = models.TextField()
    # Optional SQL from the caller for the data-analysis worker (same guard as Text2SQL).
    sql = models.TextField(blank=True, default="")
    # The caller's images for the vision agent: their SHA-256, size and type only, never the
    # bytes (those wait in the cache for the run: agents.tools.vision.images_keep).
    images = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=20, choices=SessionStatus.choices, default=SessionStatus.QUEUED)
    phase = models.CharField(max_length=30, default="queued")
    iteration = models.PositiveIntegerField(default=0)
    plan = models.JSONField(default=list, blank=True)
    plan_source = models.CharField(max_length=20, blank=True, default="", help_text="case, llm or heuristic")
    results = models.JSONField(default=dict, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=dict, blank=True)
    timings_ms = models.JSONField(default=dict, blank=True)
    answer = models.TextField(blank=True, default="")
    passed = models.BooleanField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    model = models.CharField(max_length=100, blank=True, default="")
    case = models.ForeignKey(
        Case, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions",
        help_text="The case whose plan was used.",
    )
    case_version = models.PositiveIntegerField(null=True, blank=True)
    case_similarity = models.FloatField(null=True, blank=True)
    created_case = models.ForeignKey(
        Case, on_delete=models.SET_NULL, null=True, blank=True, related_name="created_by_sessions",
        help_text="A new case (pending review) made from this successful session.",
    )
    log_id = models.UUIDField(null=True, blank=True, help_text="The execution log of this session.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started this session.")
    retry_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the sweeper hands the pending work (run or execution log) out again; empty when none is.",
    )
    # The session runner holding this session (agents.runtime.runner) and until when: it renews
    # the lease while it runs the session; once the lease has passed (the runner was killed),
    # any runner claims the session again.
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    # The owner: only this key reads the session, its stream and its place in the list (an
    # unknown id and another key's session both answer 404). Empty for sessions made by
    # commands or before owners were recorded: no key sees those.
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions",
        help_text="The API key that started the session; only it can read it.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="agent_sessions",
        help_text="The user the key acted for when it started the session.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Admin list and operators: recent sessions by status.
            models.Index(fields=["status", "-created_at"], name="session_status_created_idx"),
            # The runners' claim: `WHERE status IN ('queued', 'running') ORDER BY created_at ...
            # FOR UPDATE SKIP LOCKED`, over the few unfinished rows only.
            models.Index(fields=["created_at"], condition=models.Q(status__in=["queued", "running"]),
                         name="session_unfinished_idx"),
            # `GET /api/sessions/`: one key's sessions, newest first (cursor on created_at, id).
            models.Index(fields=["api_key", "-created_at", "-id"], name="session_key_created_idx"),
            # The per-key quota at each post (`session_create`): `WHERE api_key_id = ? AND status IN
            # ('queued', 'running')`, over the unfinished rows only.
            models.Index(fields=["api_key"], condition=models.Q(status__in=["queued", "running"]),
                         name="session_key_unfinished_idx"),
            # The sweeper's `WHERE retry_at <= now ORDER BY retry_at`: only rows with work pending.
            models.Index(fields=["retry_at"], condition=models.Q(retry_at__isnull=False), name="session_retry_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.query[:60]} ({self.status})"


class SessionEvent(models.Model):
    """One step of a session, numbered per session so SSE clients resume by `Last-Event-ID`."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="events")
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=30)
    phase = models.CharField(max_length=30)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "sequence"]
        constraints = [
            # The stream's `WHERE session_id = ? AND sequence > ?` is served by this index too.
            models.UniqueConstraint(fields=["session", "sequence"], name="sessionevent_unique_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} #{self.sequence} {self.kind}"
