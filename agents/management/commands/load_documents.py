from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from agents.knowledge.services import SUFFIXES, documents_load_path
from core.errors import InvalidInput


class Command(BaseCommand):
    help = "Load knowledge documents (.txt/.md) from a file or directory: chunk, embed, index. Unchanged files are skipped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path, help="A .txt/.md file or a directory searched recursively.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        total = 1 if path.is_file() else len([p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES]) if path.exists() else 0
        try:
            with tqdm(total=total, desc="documents", disable=options["no_progress"], file=self.stderr) as bar:
                seen, changed = documents_load_path(path, on_progress=bar.update)
        except InvalidInput as error:
            raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(f"{seen} document(s) read, {changed} new or changed."))
