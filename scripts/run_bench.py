"""`make bench`: run the benchmarks on PostgreSQL + pgvector and write docs/benchmarks.md.

Uses the PostgreSQL at DATABASE_URL when it has pgvector, else a throwaway embedded server
(the same one the test suite uses). Arguments go to `manage.py bench` (e.g. `--only ingestion`).
"""
from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from run_tests import postgres_url  # noqa: E402


def main() -> int:
    with postgres_url() as (url, label):
        print(f"Benchmarks on {label}", flush=True)
        env = {**os.environ, "DATABASE_URL": url, "BENCH_DATABASE_LABEL": label}
        return subprocess.call([sys.executable, "manage.py", "bench", *sys.argv[1:]], env=env)


if __name__ == "__main__":
    sys.exit(main())
