"""`manage.py reflect --case ID` analyses one case; `--all` runs a batch with a progress bar."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.errors import DomainError
from reflection.analysis import services
from reflection.suggestions import generation as suggester


class Command(BaseCommand):
    help = "Analyse one case (--case ID) or every case with new logs (--all), in this process."

    def add_arguments(self, parser: Any) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--case", dest="case_id", help="Analyse this case now.")
        target.add_argument("--all", action="store_true", help="Run a batch over every case with new logs.")
        parser.add_argument("--window-days", type=int, default=30, help="Analysis window (1..365 days).")
        parser.add_argument(
            "--suggest", action="store_true",
            help="With --case: also propose an improvement if the case is weak (batch runs always do).",
        )

    def handle(self, *args: Any, case_id: str | None, all: bool, window_days: int, suggest: bool = False,
               **options: Any) -> None:
        try:
            if case_id:
                record = services.case_analysis_record(case_id=case_id, window_days=window_days)
                result = record.analysis
                self.stdout.write(
                    f"{result['case_id']} version {result['case_version']}: {result['total_executions']} runs, success rate "
                    f"{result['success_rate']}, weighted {result['weighted_success_rate']}, "
                    f"p95 {result['latency_ms']['p95']} ms, confidence {result['confidence']}"
                )
                if suggest:
                    suggestion, reason = suggester.suggestion_generate_explained(case_id=result["case_id"], analysis=result)
                    self.stdout.write(
                        f"suggestion #{suggestion.pk} ({suggestion.source}) is pending review"
                        if suggestion else f"no suggestion: {reason}"
                    )
                return
            # Run in this process (with a progress bar) rather than in the queue.
            with tqdm(desc="reflect", unit="case", disable=None) as bar:
                run = services.reflection_run_here(
                    requested_by="manage.py reflect", window_days=window_days, progress=bar.update
                )
        except DomainError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            f"run #{run.pk} {run.status}: {run.cases_analysed} analysed, {run.cases_skipped} skipped, "
            f"{run.cases_failed} failed, {run.warnings_set} warnings set, {run.warnings_cleared} cleared "
            f"in {run.duration_ms} ms"
        )
