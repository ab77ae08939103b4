"""The demo analytics data copied into a PostgreSQL database (tests and benchmarks)."""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import psycopg

from agents.demo import data as demo_data


def demo_analytics_to_postgres(url: str, *, source: Path, tables: Sequence[str]) -> None:
    """Recreate the demo tables at `url` from the SQLite demo file, with planner statistics."""
    reader = sqlite3.connect(source)
    try:
        with psycopg.connect(url, autocommit=True) as target:
            target.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(tables))}")  # a crashed run's leftovers
            # DOUBLE PRECISION keeps SQLite's 8-byte REAL values exact (PostgreSQL's REAL is 4 bytes).
            for statement in demo_data.SCHEMA.replace("REAL", "DOUBLE PRECISION").split(";"):
                if statement.strip():
                    target.execute(statement)
            for table in tables:
                with target.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    for row in reader.execute(f"SELECT * FROM {table}"):
                        copy.write_row(row)
            # A real analytics database has statistics: the cost check reads the planner's estimates.
            target.execute(f"ANALYZE {', '.join(tables)}")
    finally:
        reader.close()


def drop_demo_analytics(url: str, *, tables: Sequence[str]) -> None:
    with psycopg.connect(url, autocommit=True) as target:
        target.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(tables))}")
