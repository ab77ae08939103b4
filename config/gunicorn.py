"""gunicorn hooks (`--config python:config.gunicorn`, from scripts/serve.sh).

A worker freezes what it loaded at start (Django, the URLconf and every view module) out of
the garbage collector's reach: those objects live as long as the process, and without the
freeze each full collection walks all of them again. A 1,000-log ingestion batch allocates
enough to trigger such collections: decoding one took 9.5 ms in a Django process, 3.9 ms frozen.

prometheus_client's multiprocess mode asks the master to tell it when a worker exits, so
gauges that count only live processes drop that worker's values (prometheus.github.io/
client_python/multiprocess). Counters and histograms of a dead worker stay in the sums.

Before anything starts, the master refuses more than one worker when rate limits would be
counted per process (no REDIS_URL): each worker would let a key through at its full rate
(config.checks.local_rate_limit_problem).
"""
from __future__ import annotations

import gc
import os
import sys


def on_starting(server) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config.checks import local_rate_limit_problem

    problem = local_rate_limit_problem(int(server.cfg.workers))
    if problem is not None:
        server.log.error("Refusing to start: %s", problem)
        sys.exit(1)


def post_worker_init(worker) -> None:
    from django.urls import get_resolver

    _ = get_resolver().url_patterns  # imports every view module now, before the freeze
    if os.environ.get("EMBEDDING_WARM") == "1":
        # The first search would load the model (~1 s on ONNX Runtime; ~10 s more on torch, or
        # an export if prepare_embeddings has not run) inside a request; scripts/serve.sh asks
        # for it at start instead.
        from casebank.search.embeddings import embed_text

        embed_text("warm up")
    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
