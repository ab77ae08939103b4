"""gunicorn hooks (`--config python:config.gunicorn`, from scripts/serve.sh).

prometheus_client's multiprocess mode asks the master to tell it when a worker exits, so
gauges that count only live processes drop that worker's values (prometheus.github.io/
client_python/multiprocess). Counters and histograms of a dead worker stay in the sums.
"""
from __future__ import annotations

import os


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
