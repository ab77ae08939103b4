from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from reflection.logs import services as ingestion

# Lines without an id get one derived from where they are (the file's name and the line
# number) and what they say: importing a file twice stores each line once, and two identical
# lines (two runs that really happened alike) are two logs.
IMPORT_NAMESPACE = uuid.UUID("0b7c4a8e-9a51-4f39-8d7e-3c1f6a2b9e10")


def line_id(source: str, number: int, line: bytes) -> str:
    return str(uuid.uuid5(IMPORT_NAMESPACE, f"{source}\n{number}\n{hashlib.sha256(line.strip()).hexdigest()}"))


class Command(BaseCommand):
    help = (
        "Import execution logs from a JSON Lines file (one log object per line). Bad lines are "
        "reported by line number, in file order, and skipped; good lines are stored once, even on "
        "a re-run (a line without an id gets one derived from the file name, its line number and "
        "its content, so identical lines are distinct logs). Exits 1 when any line was bad."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path, help="The .jsonl file.")
        parser.add_argument("--batch-size", type=int, default=ingestion.MAX_BATCH)
        parser.add_argument(
            "--source", help="Name the file by this instead of its file name when deriving ids "
            "(re-import a renamed file under its old name; tell apart two files of the same name).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        batch_size = options["batch_size"]
        if not 1 <= batch_size <= ingestion.MAX_BATCH:
            raise CommandError(f"--batch-size must be between 1 and {ingestion.MAX_BATCH}.")

        source = options["source"] or path.name
        totals = {"created": 0, "duplicates": 0}
        # Reported at the end, sorted: a JSON error is found on reading, a validation error only
        # when its chunk is checked, so finding order is not file order.
        self.problems: list[tuple[int, str]] = []
        pending: list[tuple[int, Any]] = []
        with path.open("rb") as handle, tqdm(
            total=path.stat().st_size, unit="B", unit_scale=True, disable=options["no_progress"], file=self.stderr
        ) as progress:
            for number, line in enumerate(handle, start=1):
                progress.update(len(line))
                if not line.strip():
                    continue
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError as error:
                    # The parser's own "line 2 column 1" counts lines within this one line.
                    column = min(error.pos, len(line.rstrip())) + 1
                    self.problems.append((number, f"not valid JSON ({error.msg} at column {column})"))
                    continue
                if isinstance(item, dict) and item.get("id") is None:
                    item["id"] = line_id(source, number, line)
                pending.append((number, item))
                if len(pending) >= batch_size:
                    self._flush(pending, totals)
                    pending = []
            self._flush(pending, totals)

        for number, problem in sorted(self.problems):
            self.stderr.write(f"line {number}: {problem}")
        bad = len(self.problems)
        summary = f"Imported {totals['created']} log(s); {totals['duplicates']} already stored; {bad} bad line(s)."
        if bad:
            self.stdout.write(self.style.WARNING(summary))
            raise CommandError(f"{bad} bad line(s) were not imported (listed above by line number).")
        self.stdout.write(self.style.SUCCESS(summary))

    def _flush(self, pending: list[tuple[int, Any]], totals: dict[str, int]) -> None:
        """Store the good lines of a chunk; a bad line never holds back the others."""
        if not pending:
            return
        records, errors = ingestion.parse_each([item for _, item in pending])
        for index, problems in errors.items():
            self.problems.append((pending[index][0], "; ".join(f"{k}: {v}" for k, v in problems.items())))
        # A line repeating an id already seen in this chunk counts as already stored.
        totals["duplicates"] += len(pending) - len(errors) - len(records)
        result = ingestion.logs_ingest(records=records)
        totals["created"] += result.created
        totals["duplicates"] += result.duplicates
