"""Running checked SQL on the analytics database: read-only, time-boxed, row-capped.

SQLite is opened with `mode=ro` and `PRAGMA query_only`, a progress handler aborts a query past
the statement timeout, and no string or blob may grow past `MAX_VALUE_BYTES`. PostgreSQL runs in
a READ ONLY transaction with a local `statement_timeout` and a server-side cursor, so only the
capped rows ever leave the server; give it a read-only role as well in production. Any database
error becomes an `AnalyticsError`.
"""
from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from agents import conf
from agents.tools.result_bounds import BoundedRows, fetch_bounded
from agents.tools.sql_guard import SqlRefused, check_sql, check_sql_columns

# A single value (string or blob) larger than this aborts the SQLite query: one VM step can build a
# huge string, and the progress handler that enforces the timeout only runs between steps.
MAX_VALUE_BYTES = 1_000_000


class AnalyticsError(Exception):
    """The database refused or aborted the query (timeout, missing column, ...)."""


@dataclass(frozen=True)
class QueryResult:
    sql: str
    columns: list[str]
    rows: list[list]
    truncated: bool
    elapsed_ms: float
    cache_key: str
    notes: list[str]


def dialect_of(url: str) -> str:
    return "postgres" if url.startswith(("postgres://", "postgresql://")) else "sqlite"


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise AnalyticsError("ANALYTICS_DATABASE_URL must be sqlite:///path or postgres://...")
    # sqlite:////abs/path -> /abs/path; sqlite:///relative -> relative
    return Path(unquote(url[len("sqlite:///") :]))


def cache_key_for(sql: str, url: str) -> str:
    # The database is part of the key (not its password): two databases never share answers.
    parsed = urlparse(url)
    where = f"{parsed.scheme}://{parsed.hostname or ''}{parsed.path}"
    return "agents:sql:" + hashlib.sha256(f"{where}\n{sql}".encode()).hexdigest()[:32]


def table_columns(*, url: str | None = None) -> dict[str, list[str]]:
    """The allow-listed tables and their columns, for the Text2SQL prompt."""
    url = url or conf.analytics_database_url()
    allowed = list(conf.get("ANALYTICS_ALLOWED_TABLES"))
    schema: dict[str, list[str]] = {}
    if dialect_of(url) == "sqlite":
        with _sqlite_connect(url) as connection:
            for table in allowed:
                rows = connection.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()
                if rows:
                    schema[table] = [row[0] for row in rows]
        return schema
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_name = ANY(%s) ORDER BY table_name, ordinal_position",
            (allowed,),
        ).fetchall()
    for table, column in rows:
        schema.setdefault(table, []).append(column)
    return schema


def _sqlite_connect(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    if not path.exists():
        raise AnalyticsError(f"The analytics database {path.name} does not exist; run `manage.py seed_demo`.")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
    connection.execute("PRAGMA query_only = ON")
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    return connection


def _real_columns(url: str) -> dict[str, list[str]]:
    # Read per query (about a millisecond) rather than cached: a cached schema would let a column
    # dropped since pass the check, and one added be refused.
    try:
        return table_columns(url=url)
    except AnalyticsError:
        raise
    except Exception as error:  # sqlite3.Error, psycopg.Error: the database is unreachable
        raise AnalyticsError(f"The analytics database is unreachable: {type(error).__name__}") from None


def _fetch(cursor: object, *, row_cap: int, max_bytes: int | None, max_cell: int | None) -> BoundedRows:
    return fetch_bounded(
        cursor,  # type: ignore[arg-type]
        row_cap=row_cap,
        max_bytes=int(conf.get("ANALYTICS_MAX_RESULT_BYTES")) if max_bytes is None else max_bytes,
        max_cell=int(conf.get("ANALYTICS_MAX_CELL_BYTES")) if max_cell is None else max_cell,
    )


def _run_sqlite(
    url: str, sql: str, *, timeout_ms: int, row_cap: int, max_bytes: int | None = None, max_cell: int | None = None
) -> tuple[list[str], BoundedRows]:
    connection = None
    try:
        connection = _sqlite_connect(url)
        deadline = time.monotonic() + timeout_ms / 1000
        # Returning non-zero from the handler interrupts the statement.
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        cursor = connection.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        bounded = _fetch(cursor, row_cap=row_cap, max_bytes=max_bytes, max_cell=max_cell)
    # sqlite3.Error covers ProgrammingError (bindings, several statements) and DataError (too big);
    # Warning is what older Pythons raise for a second statement.
    except (sqlite3.Error, sqlite3.Warning) as error:
        if "interrupted" in str(error):
            raise AnalyticsError(f"The query exceeded the statement timeout of {timeout_ms} ms.") from None
        raise AnalyticsError(f"The database refused the query: {error}") from None
    finally:
        if connection is not None:
            connection.close()
    return columns, bounded


def _run_postgres(
    url: str, sql: str, *, timeout_ms: int, row_cap: int, max_bytes: int | None = None, max_cell: int | None = None
) -> tuple[list[str], BoundedRows]:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=False) as connection:
            with connection.transaction():
                connection.execute("SET TRANSACTION READ ONLY")
                connection.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
                # A client-side cursor would receive the whole result before fetchmany() caps it.
                with connection.cursor(name="analytics") as cursor:
                    cursor.execute(sql)
                    columns = [d.name for d in cursor.description or []]
                    bounded = _fetch(cursor, row_cap=row_cap, max_bytes=max_bytes, max_cell=max_cell)
    except psycopg.errors.QueryCanceled:
        raise AnalyticsError(f"The query exceeded the statement timeout of {timeout_ms} ms.") from None
    except psycopg.Error as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise AnalyticsError(f"The database refused the query: {first_line}") from None
    return columns, bounded


def run_checked_query(sql: str, *, url: str | None = None) -> QueryResult:
    """Guard then run; raises `SqlRefused` (nothing ran) or `AnalyticsError`."""
    url = url or conf.analytics_database_url()
    dialect = dialect_of(url)
    checked = check_sql(sql, allowed_tables=conf.get("ANALYTICS_ALLOWED_TABLES"), dialect=dialect)
    # Only a query that passed the first half opens a connection, to read the real columns.
    check_sql_columns(checked, columns=_real_columns(url), dialect=dialect)
    started = time.perf_counter()
    runner = _run_postgres if dialect_of(url) == "postgres" else _run_sqlite
    columns, bounded = runner(
        url,
        checked.sql,
        timeout_ms=int(conf.get("ANALYTICS_STATEMENT_TIMEOUT_MS")),
        row_cap=int(conf.get("ANALYTICS_ROW_CAP")),
    )
    return QueryResult(
        sql=checked.sql,
        columns=columns,
        rows=bounded.rows,
        truncated=bounded.truncated,
        elapsed_ms=(time.perf_counter() - started) * 1000,
        cache_key=cache_key_for(checked.sql, url),
        notes=bounded.notes,
    )


__all__ = ["AnalyticsError", "QueryResult", "SqlRefused", "run_checked_query", "table_columns"]
