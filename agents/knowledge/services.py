"""Loading knowledge documents: chunk, embed (outside the transaction), index for BM25."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from agents.models import Document, DocumentChunk, DocumentTerm
from casebank.search.embeddings import embed_texts
from casebank.search.text import term_frequencies
from core.errors import InvalidInput

SUFFIXES = (".txt", ".md", ".markdown")
CHUNK_CHARS = 800
MAX_DOCUMENT_CHARS = 2_000_000


def split_chunks(text: str, *, size: int = CHUNK_CHARS) -> list[str]:
    """Paragraph-aligned chunks of about `size` characters; a long paragraph is cut by words."""
    chunks: list[str] = []
    current = ""
    for paragraph in [p.strip() for p in text.split("\n\n") if p.strip()]:
        while len(paragraph) > size:
            cut = paragraph.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            if current:
                chunks.append(current)
                current = ""
            chunks.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if current and len(current) + len(paragraph) + 2 > size:
            chunks.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        chunks.append(current)
    return chunks


def _title_of(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.lstrip("#").strip()[:300] or fallback
    return fallback


def document_upsert(*, source: str, content: str, title: str = "") -> tuple[Document, bool]:
    """Create or replace a document by source; unchanged content is a no-op. Returns (doc, changed)."""
    if not content.strip():
        raise InvalidInput("The document is empty.", errors={"content": ["Empty."]})
    if len(content) > MAX_DOCUMENT_CHARS:
        raise InvalidInput("The document is too large.", errors={"content": [f"At most {MAX_DOCUMENT_CHARS} characters."]})
    checksum = hashlib.sha256(content.encode()).hexdigest()
    existing = Document.objects.filter(source=source).first()
    if existing is not None and existing.checksum == checksum:
        return existing, False
    title = title or _title_of(content, Path(source).stem)
    texts = split_chunks(content)
    # The title goes into every chunk's embedding and index: chunks of a long document stay findable by it.
    vectors = embed_texts([f"{title}\n{text}" for text in texts])
    with transaction.atomic():
        document = existing or Document(source=source)
        document.title, document.content, document.checksum = title, content, checksum
        document.updated_at = timezone.now()
        document.full_clean()
        document.save()
        document.chunks.all().delete()
        chunks = DocumentChunk.objects.bulk_create(
            [
                DocumentChunk(document=document, index=i, text=text, embedding=vector,
                              search_length=sum(term_frequencies(f"{title}\n{text}").values()))
                for i, (text, vector) in enumerate(zip(texts, vectors, strict=False))
            ]
        )
        if any(chunk.pk is None for chunk in chunks):  # SQLite before RETURNING: fetch ids
            chunks = list(document.chunks.order_by("index"))
        DocumentTerm.objects.bulk_create(
            [
                DocumentTerm(chunk=chunk, term=term, tf=count)
                for chunk in chunks
                for term, count in term_frequencies(f"{title}\n{chunk.text}").items()
            ],
            batch_size=1000,
        )
    return document, True


def documents_load_path(path: Path, *, on_progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Load every .txt/.md file under `path` (or the file itself); returns (seen, changed)."""
    if not path.exists():
        raise InvalidInput(f"{path} does not exist.")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
    files = [f for f in files if f.suffix.lower() in SUFFIXES]
    changed = 0
    for file in files:
        _, did_change = document_upsert(source=str(file.resolve()), content=file.read_text(encoding="utf-8"))
        changed += int(did_change)
        if on_progress:
            on_progress(1)
    return len(files), changed


def documents_reindex_terms(*, on_progress: Callable[[int], None] | None = None) -> int:
    """Re-tokenise every document chunk (search length and postings); returns the number of chunks."""
    count = 0
    for chunk_id in DocumentChunk.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=500):
        with transaction.atomic():
            chunk = DocumentChunk.objects.select_related("document").only("id", "text", "document__title").filter(pk=chunk_id).first()
            if chunk is not None:
                frequencies = term_frequencies(f"{chunk.document.title}\n{chunk.text}")
                DocumentChunk.objects.filter(pk=chunk.pk).update(search_length=sum(frequencies.values()))
                DocumentTerm.objects.filter(chunk=chunk).delete()
                DocumentTerm.objects.bulk_create([DocumentTerm(chunk=chunk, term=term, tf=n) for term, n in frequencies.items()])
                count += 1
        if on_progress:
            on_progress(1)
    return count
