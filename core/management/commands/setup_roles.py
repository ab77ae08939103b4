"""Create or refresh the least-privilege groups (Reviewers); safe to re-run."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from core.roles import roles_setup


class Command(BaseCommand):
    help = "Create or refresh the Reviewers group with view and approve permissions only (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        for result in roles_setup():
            verb = "Created" if result.created else "Updated"
            self.stdout.write(f"{verb} group {result.group!r} with {len(result.granted)} permissions.")
            for name in result.missing:
                self.stdout.write(f"  skipped {name}: no such permission in this schema")
