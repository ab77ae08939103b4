from __future__ import annotations

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from casebank.access.models import ApiKey
from casebank.cases.models import Case
from reflection.logs.ids import uuid7


class ExecutionLog(models.Model):
    """One run of an agent, usually of a case. Written only through `reflection.logs.services`.

    `id` may come from the client so that re-sending a batch never duplicates a run;
    `created_at` is when the run happened (client-supplied or now), `ingested_at` when we
    stored it: reflection runs snapshot on `ingested_at`, so back-dated logs are not missed.
    """

    # Time-ordered (UUIDv7): new rows append to the primary-key index instead of landing anywhere.
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No database-level FK: a per-row constraint trigger costs a third of the insert time at
    # 50k logs/s. Ingestion checks every case_id in the same transaction, and cases are never
    # deleted (they are archived), so the reference holds without the trigger.
    case = models.ForeignKey(
        Case,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="execution_logs",
        db_constraint=False,
        # No index of its own: (case, created_at) below leads with case_id and serves every
        # lookup by case; a second index would cost every insert for nothing.
        db_index=False,
    )
    case_version = models.PositiveIntegerField(null=True, blank=True)
    # The supervisor session that produced the run; a plain id keeps reflection unaware of agents.
    session_id = models.UUIDField(null=True, blank=True)
    success = models.BooleanField()
    error_type = models.CharField(max_length=100, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # `stats.message_template(error_message)` of a failure, set at ingestion (~5 µs a failure) so
    # that analyses group errors by it instead of running five regexp_replace over every failure
    # again and again (~70 % of the error scan). NULL for successes, and for logs stored before
    # this column: analyses then template those in SQL (`stats.stored_template_sql`).
    error_template = models.TextField(null=True, blank=True, editable=False)
    execution_time_ms = models.PositiveIntegerField()
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    model = models.CharField(max_length=100, blank=True, default="")
    context = models.JSONField(default=dict, blank=True)
    # Whose run it is: the API key that sent the log, or the key that started the session the
    # supervisor logged. A key sees only its own logs unless it may read them all (`reflection`
    # scope and the view permission, like the admin's log screen). Empty for imported logs.
    # No database-level FK, for the reason given at `case`; deleting a key empties its logs' owner.
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False,
        db_index=False, editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The database default is what ingestion's COPY uses: the writing statement's own time on
    # PostgreSQL (Now() is STATEMENT_TIMESTAMP() there), see the settle invariant in ingestion.
    ingested_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Per-case analysis over a window: WHERE case_id = ? AND created_at >= ?
            models.Index(fields=["case", "created_at"], name="log_case_created_idx"),
            # The log list (GET /api/logs/ and the admin): ORDER BY created_at DESC, id DESC, the
            # id breaking ties so that cursor pages neither skip nor repeat logs; and retention:
            # WHERE created_at >= ? AND created_at < ?.
            models.Index(fields=["created_at", "id"], name="log_created_id_idx"),
            # GET /api/logs/ for a key that reads its own logs only: WHERE api_key_id = ? ORDER BY
            # created_at DESC, id DESC (the shared index would walk everyone's logs to fill a page).
            models.Index(fields=["api_key", "created_at", "id"], name="log_key_created_id_idx"),
            # Reflection runs: which cases got logs since the last run's snapshot.
            models.Index(fields=["ingested_at"], name="log_ingested_idx"),
        ]

    def __str__(self) -> str:
        outcome = "ok" if self.success else (self.error_type or "failed")
        return f"{self.id} {outcome} {self.execution_time_ms} ms"
