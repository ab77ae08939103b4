from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from agents.knowledge.embeddings import embeddings_rebuild
from agents.models import DocumentChunk
from casebank.models import Case
from casebank.search.embeddings import model_label
from core.errors import InvalidInput


class Command(BaseCommand):
    help = (
        "Re-embed every case and knowledge-document chunk with EMBEDDING_MODEL and rebuild the vector "
        "columns (vector(EMBEDDING_DIMENSIONS)) and their HNSW indexes. Run after changing the model; "
        "vector search finds nothing until it is done (BM25 keeps working)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        total = Case.objects.count() + DocumentChunk.objects.count()
        try:
            with tqdm(total=total, desc="embeddings", disable=options["no_progress"], file=self.stderr) as bar:
                cases, chunks = embeddings_rebuild(on_progress=bar.update)
        except InvalidInput as error:
            raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(
            f"{cases} case(s) and {chunks} chunk(s) embedded with {model_label()} "
            f"({settings.EMBEDDING_DIMENSIONS} dimensions); vector indexes rebuilt."
        ))
