"""`manage.py prepare_embeddings`: export the embedding model to ONNX ahead of the processes that embed."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from casebank.search.embeddings import prepare
from casebank.search.onnx_cache import ExportFailed


class Command(BaseCommand):
    help = (
        "Export the embedding model to ONNX into EMBEDDING_CACHE_DIR now (EMBEDDING_BACKEND=onnx), so that "
        "no web worker or session runner exports it as it starts. Idempotent: an exported graph is reused; "
        "a broken one is exported again. Run by make run, scripts/serve.sh and the image build."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.stdout.write(prepare())
        except ExportFailed as error:
            # Not fatal: every process then embeds on torch (the same vectors, ~300 MB more each).
            self.stderr.write(self.style.WARNING(f"{error} Processes will embed on torch."))
