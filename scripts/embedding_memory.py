"""Memory and latency of a process that embeds, as a session runner or web worker holds the model
(a dev tool, not a test; figures in docs/benchmarks.md, "Embedding model memory").

Prints the RSS after `django.setup()`, after the model's warm-up, after 200 query embeddings one
at a time (the median and p95 of their latency), after 200 more from 8 threads at once (the
runner's database pool), after one batch of 64 long chunks, and which of torch / transformers the
process imported. Usage:

    EMBEDDING_BACKEND=onnx .venv/bin/python scripts/embedding_memory.py
    EMBEDDING_BACKEND=torch .venv/bin/python scripts/embedding_memory.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUERIES = 200
THREADS = 8  # agents.runtime.runner's database pool, where sessions embed


def rss_mb() -> float:
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    import django

    django.setup()
    from casebank.search.embeddings import embed_text, embed_texts

    print(f"backend={os.environ.get('EMBEDDING_BACKEND', '(default)')}")
    print(f"after django.setup(): {rss_mb():.0f} MB")
    started = time.perf_counter()
    embed_text("warm up")
    print(f"after warm-up: {rss_mb():.0f} MB ({time.perf_counter() - started:.1f} s to load)")
    # Distinct texts of a query's length, so no cache answers; embed_text, not embed_query.
    texts = [f"What was the total revenue of region {i} last quarter, and our refund policy?" for i in range(QUERIES)]
    latencies = []
    for text in texts:
        started = time.perf_counter()
        embed_text(text)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    print(f"after {QUERIES} queries: {rss_mb():.0f} MB; latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {latencies[int(0.95 * len(latencies))] * 1000:.1f} ms")
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(embed_text, [f"{text} (again)" for text in texts]))
    print(f"after {QUERIES} more from {THREADS} threads: {rss_mb():.0f} MB")
    # As rebuild_embeddings or a document upload embeds: a batch of 64 chunks of ~256 tokens.
    started = time.perf_counter()
    embed_texts([f"Chunk {i} of a long document about refunds and revenue. " * 25 for i in range(64)])
    print(f"after a batch of 64 long chunks: {rss_mb():.0f} MB ({time.perf_counter() - started:.1f} s)")
    print(f"imported: torch={'torch' in sys.modules} transformers={'transformers' in sys.modules} "
          f"onnxruntime={'onnxruntime' in sys.modules}")


if __name__ == "__main__":
    main()
