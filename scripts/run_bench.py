"""`make bench`: run the benchmarks on PostgreSQL + pgvector and write docs/benchmarks.md.

Uses the PostgreSQL at DATABASE_URL when it has pgvector, else a throwaway embedded server
(the same one the test suite uses, with a production-sized buffer cache). Arguments go to
`manage.py bench` (e.g. `--only ingestion`).
"""
from __future__ import annotations

import os
import subprocess
import sys

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from run_tests import postgres_url  # noqa: E402

# The embedded server as PostgreSQL is run in production, not with its 128 MB out-of-the-box
# buffer cache: 1 GB, ~4 % of this machine's memory (guides say up to 25 %). Both figures are
# in docs/benchmarks.md; a server at DATABASE_URL keeps its own settings.
SERVER_SETTINGS = {"shared_buffers": "1GB"}


def main() -> int:
    with postgres_url(SERVER_SETTINGS) as (url, label):
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW shared_buffers").fetchone()
            assert row is not None  # SHOW always answers one row
            label += f", shared_buffers {row[0]}"
        print(f"Benchmarks on {label}", flush=True)
        env = {**os.environ, "DATABASE_URL": url, "BENCH_DATABASE_LABEL": label}
        return subprocess.call([sys.executable, "manage.py", "bench", *sys.argv[1:]], env=env)


if __name__ == "__main__":
    sys.exit(main())
