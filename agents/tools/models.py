"""The slots that bound how many analytics queries run at once, per API key and in all."""
from __future__ import annotations

from django.db import models


class AnalyticsSlot(models.Model):
    """One place for a running analytics query in a scope (`global`, or `key:<api key id>`).

    A query claims a free slot of its key's scope and one of the global scope with a conditional
    UPDATE (`until` passed → now + lease), so every process and machine shares the same limits;
    it frees them when it ends. A holder that dies frees them when its lease passes.
    """

    scope = models.CharField(max_length=50)
    slot = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=40, blank=True, default="")
    until = models.DateTimeField()

    class Meta:
        constraints = [
            # The claim's `WHERE scope = ? AND slot = ? AND until <= now` is served by this index.
            models.UniqueConstraint(fields=["scope", "slot"], name="analyticsslot_unique_scope_slot"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} #{self.slot}"
