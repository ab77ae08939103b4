"""`manage.py purge_logs`: roll old raw logs into daily summaries and delete them."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from reflection.analysis.retention import logs_roll_up_and_purge, retention_days


class Command(BaseCommand):
    help = "Roll raw execution logs older than LOG_RETENTION_DAYS into daily per-case summaries, then delete them."

    def handle(self, *args: Any, **options: Any) -> None:
        with tqdm(desc="days rolled up", unit="day", disable=None) as bar:
            result = logs_roll_up_and_purge(progress=bar.update)
        self.stdout.write(
            f"retention {retention_days()} days: {result['days']} day(s) before {result['before']} rolled into "
            f"{result['summaries']} summaries; {result['deleted']} raw logs deleted"
        )
