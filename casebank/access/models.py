"""API keys: one per client, stored as a hash, acting as their user; tiers set the rate limit."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from casebank.access.scopes import default_scopes


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
    scopes = models.JSONField(
        default=default_scopes,
        help_text="What the key may do (casebank.access.scopes.Scope), on top of its user's permissions.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
