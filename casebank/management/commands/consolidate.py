"""`manage.py consolidate [--apply]`: show (or apply) the consolidation of the case bank."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from casebank.consolidation.services import SAFETY_RULES, consolidation_run


class Command(BaseCommand):
    help = "Archive low performers, inactive cases and near-duplicates (SPEC rules). Dry run unless --apply."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--apply", action="store_true", help="Archive for real (default: only list candidates).")

    def handle(self, *args: Any, apply: bool, **options: Any) -> None:
        report = consolidation_run(dry_run=not apply, actor="manage.py consolidate")
        for action in report["actions"]:
            mark = "archived" if action["applied"] else ("skipped" if apply else "would archive")
            self.stdout.write(f"{mark}: {action['case_id']} [{action['reason']}] {action['title']}: {action['detail']}")
        verb = "applied" if apply else "candidates (dry run; --apply to act)"
        count = report["applied"] if apply else len(report["actions"])
        self.stdout.write(f"{count} {verb}")
        held = report["held_back"]
        if held:
            reasons = ", ".join(f"{held[rule]} {SAFETY_RULES[rule]}" for rule in SAFETY_RULES if rule in held)
            self.stdout.write(f"held back: {reasons} (safety rules: such cases are never archived automatically)")
        elif not report["actions"]:
            self.stdout.write("No case matches a rule: none has a success rate under 30 % over more than 10 uses, "
                              "none has been unused for 90 days, no two are near-duplicates.")
