"""LLM bookkeeping: one row per call (tokens, cost, latency, outcome) and the shared rate slots.

Rows are written only through `reflection.llm`.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone


class LLMOutcome(models.TextChoices):
    OK = "ok", "OK"
    INVALID_OUTPUT = "invalid_output", "Invalid output after retries"
    ERROR = "error", "Provider error after retries"
    BREAKER_OPEN = "breaker_open", "Circuit breaker open"
    RATE_LIMITED = "rate_limited", "Rate limit exhausted"


class LLMCall(models.Model):
    """One call of `LLMClient.complete_json` (all its attempts), successful or not."""

    purpose = models.CharField(max_length=100)
    model = models.CharField(max_length=100, blank=True, default="")
    outcome = models.CharField(max_length=20, choices=LLMOutcome.choices)
    attempts = models.PositiveSmallIntegerField(default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "LLM call"
        indexes = [
            # Cost and failure reports: WHERE created_at >= ? GROUP BY purpose, outcome.
            models.Index(fields=["created_at"], name="llmcall_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.outcome} ({self.tokens_in}+{self.tokens_out} tokens)"


class LLMRateSlot(models.Model):
    """One of N call slots of the shared per-minute limit (a sliding window).

    A caller claims a slot with a conditional UPDATE (`used_at` older than a minute → now);
    the database serialises the claims, so every process and machine shares the same N.
    """

    slot = models.PositiveSmallIntegerField(primary_key=True)
    used_at = models.DateTimeField()

    class Meta:
        verbose_name = "LLM rate slot"

    def __str__(self) -> str:
        return f"slot {self.slot} used {self.used_at:%H:%M:%S}"


class LLMBudgetState(models.Model):
    """The shared token bucket of one purpose budget (see `reflection.llm.budgets`).

    `requests` and `tokens` are what is left, refilled continuously at the per-minute rates up
    to one minute's worth; `updated_at` is the epoch second of the last change. A claim is one
    conditional UPDATE, so the database arbitrates between processes and machines.
    """

    name = models.CharField(max_length=50, primary_key=True)
    requests = models.FloatField()
    tokens = models.FloatField()
    updated_at = models.FloatField()

    class Meta:
        verbose_name = "LLM budget"

    def __str__(self) -> str:
        return f"{self.name}: {self.requests:.0f} requests, {self.tokens:.0f} tokens left"
