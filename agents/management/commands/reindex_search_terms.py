from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from agents.knowledge.services import documents_reindex_terms
from agents.models import DocumentChunk
from casebank.models import Case
from casebank.search.services import case_terms_reindex_all


class Command(BaseCommand):
    help = (
        "Re-tokenise the BM25 postings of every case and knowledge-document chunk with the current "
        "tokeniser (run once after upgrading to the language-aware one). Searches keep working meanwhile."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["no_progress"]
        with tqdm(total=Case.objects.count(), desc="cases", disable=quiet, file=self.stderr) as bar:
            cases = case_terms_reindex_all(on_progress=bar.update)
        with tqdm(total=DocumentChunk.objects.count(), desc="chunks", disable=quiet, file=self.stderr) as bar:
            chunks = documents_reindex_terms(on_progress=bar.update)
        self.stdout.write(self.style.SUCCESS(f"{cases} case(s) and {chunks} document chunk(s) re-indexed."))
