"""Running checked SQL on the analytics database: read-only, time-boxed, costed, row-capped.

SQLite is opened with `mode=ro` and `PRAGMA query_only`, a progress handler aborts a query past
the statement timeout, and no string or blob may grow past `MAX_VALUE_BYTES`. PostgreSQL runs in
a READ ONLY transaction with local `statement_timeout`, `work_mem` and (when the login may set
it) `temp_file_limit`, as `ANALYTICS_ROLE` (`manage.py setup_analytics_role`: SELECT on the
allow-listed tables only) and through a server-side cursor, so only the capped rows ever leave
the server. Before running, the plan is checked against the cost bounds (`sql_cost`). Any
database error becomes an `AnalyticsError`; when the primary cannot be reached at all,
`ANALYTICS_FALLBACK_DATABASE_URL` (a replica) answers and the result says so.
"""
from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlparse

import psycopg
from django.conf import settings
from psycopg import sql as pg_sql

from agents import conf
from agents.tools.result_bounds import BoundedRows, fetch_bounded
from agents.tools.sql_cost import check_postgres_plan, check_sqlite_plan, table_aliases
from agents.tools.sql_guard import SqlRefused, check_sql, check_sql_columns

# A single value (string or blob) larger than this aborts the SQLite query: one VM step can build a
# huge string, and the progress handler that enforces the timeout only runs between steps.
MAX_VALUE_BYTES = 1_000_000


class AnalyticsError(Exception):
    """The database refused or aborted the query (timeout, missing column, ...)."""


class AnalyticsUnreachable(AnalyticsError):
    """No connection could be opened (the server is down, the file is missing): nothing ran,
    so the fallback database may answer instead. A query's own errors are not this."""



@dataclass(frozen=True)
class QueryResult:
    sql: str
    columns: list[str]
    rows: list[list]
    truncated: bool
    elapsed_ms: float
    cache_key: str
    notes: list[str]
    # "primary", or "fallback" when ANALYTICS_FALLBACK_DATABASE_URL answered (a note says why).
    source: str = "primary"
    plan: dict[str, float] = field(default_factory=dict)


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
    allowed = list(settings.ANALYTICS_ALLOWED_TABLES)
    schema: dict[str, list[str]] = {}
    if dialect_of(url) == "sqlite":
        connection = _sqlite_connect(url)
        try:
            for table in allowed:
                rows = connection.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()
                if rows:
                    schema[table] = [row[0] for row in rows]
        finally:
            connection.close()
        return schema
    with _postgres_connect(url) as pg:
        rows = pg.execute(
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
        raise AnalyticsUnreachable(f"The analytics database {path.name} does not exist; run `manage.py seed_demo`.")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
    except sqlite3.Error as error:
        raise AnalyticsUnreachable(f"The analytics database {path.name} cannot be opened: {error}") from None
    connection.execute("PRAGMA query_only = ON")
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    return connection


def _postgres_connect(url: str) -> psycopg.Connection:
    """A connection, or `AnalyticsUnreachable` (only here: once connected, errors are the query's)."""
    try:
        return psycopg.connect(url, connect_timeout=int(settings.ANALYTICS_CONNECT_TIMEOUT_S), autocommit=False)
    except psycopg.OperationalError as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise AnalyticsUnreachable(f"The analytics database is unreachable: {first_line}") from None


def _real_columns(url: str) -> dict[str, list[str]]:
    # Read per query (about a millisecond) rather than cached: a cached schema would let a column
    # dropped since pass the check, and one added be refused.
    try:
        return table_columns(url=url)
    except AnalyticsError:
        raise
    except Exception as error:  # sqlite3.Error, psycopg.Error after connecting
        raise AnalyticsError(f"The analytics database could not be read: {type(error).__name__}") from None


def _fetch(cursor: object, *, row_cap: int, max_bytes: int | None, max_cell: int | None) -> BoundedRows:
    return fetch_bounded(
        cursor,  # type: ignore[arg-type]
        row_cap=row_cap,
        max_bytes=int(settings.ANALYTICS_MAX_RESULT_BYTES) if max_bytes is None else max_bytes,
        max_cell=int(settings.ANALYTICS_MAX_CELL_BYTES) if max_cell is None else max_cell,
    )


class _Run(NamedTuple):
    """What one execution returns to `run_checked_query`."""

    columns: list[str]
    bounded: BoundedRows
    plan: dict[str, float]


def _run_sqlite(
    url: str, sql: str, *, timeout_ms: int, row_cap: int, max_bytes: int | None = None, max_cell: int | None = None,
    aliases: Mapping[str, str] | None = None,
) -> _Run:
    """`aliases` (name -> table, from the checked tree) turns on the cost check; without them it
    is skipped (the tests that bypass the guard call this directly)."""
    connection = None
    try:
        connection = _sqlite_connect(url)
        deadline = time.monotonic() + timeout_ms / 1000
        # Returning non-zero from the handler interrupts the statement (the plan's counts too).
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        plan = check_sqlite_plan(connection, sql, aliases=aliases) if aliases is not None else {}
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
    return _Run(columns, bounded, plan)


def _run_postgres(
    url: str, sql: str, *, timeout_ms: int, row_cap: int, max_bytes: int | None = None, max_cell: int | None = None,
    costed: bool = False,
) -> _Run:
    try:
        with _postgres_connect(url) as connection:
            with connection.transaction():
                _bound_transaction(connection, timeout_ms=timeout_ms)
                plan = check_postgres_plan(connection.cursor(), sql) if costed else {}
                # A client-side cursor would receive the whole result before fetchmany() caps it.
                with connection.cursor(name="analytics") as cursor:
                    cursor.execute(sql)
                    columns = [d.name for d in cursor.description or []]
                    bounded = _fetch(cursor, row_cap=row_cap, max_bytes=max_bytes, max_cell=max_cell)
    except psycopg.errors.QueryCanceled:
        raise AnalyticsError(f"The query exceeded the statement timeout of {timeout_ms} ms.") from None
    except psycopg.errors.ConfigurationLimitExceeded:
        raise AnalyticsError(
            f"The query needed more temporary files than ANALYTICS_TEMP_FILE_LIMIT ({settings.ANALYTICS_TEMP_FILE_LIMIT})."
        ) from None
    except psycopg.Error as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise AnalyticsError(f"The database refused the query: {first_line}") from None
    return _Run(columns, bounded, plan)


def _bound_transaction(connection: psycopg.Connection, *, timeout_ms: int) -> None:
    """READ ONLY, time and memory bounds, then the analytics role: all LOCAL to this transaction.

    temp_file_limit can only be set by a superuser login (on the role, `setup_analytics_role`
    sets it for logins as the role itself); the role comes last, since after `SET ROLE` the
    bounds could no longer be set."""
    connection.execute("SET TRANSACTION READ ONLY")
    # No parallel workers: a query's share of the server is one backend, so two heavy queries
    # take two cores, not six (each would otherwise start max_parallel_workers_per_gather more).
    connection.execute("SELECT set_config('statement_timeout', %s, true), set_config('work_mem', %s, true), "
                       "set_config('max_parallel_workers_per_gather', '0', true)",
                       (str(int(timeout_ms)), str(settings.ANALYTICS_WORK_MEM)))
    superuser = connection.execute("SELECT current_setting('is_superuser')").fetchone()
    if superuser and superuser[0] == "on":
        connection.execute("SELECT set_config('temp_file_limit', %s, true)", (str(settings.ANALYTICS_TEMP_FILE_LIMIT),))
    role = str(settings.ANALYTICS_ROLE)
    if role:
        connection.execute(pg_sql.SQL("SET LOCAL ROLE {}").format(pg_sql.Identifier(role)))


def _run_on(url: str, sql: str) -> QueryResult:
    dialect = dialect_of(url)
    checked = check_sql(sql, allowed_tables=settings.ANALYTICS_ALLOWED_TABLES, dialect=dialect)
    # Only a query that passed the first half opens a connection, to read the real columns.
    check_sql_columns(checked, columns=_real_columns(url), dialect=dialect)
    started = time.perf_counter()
    bounds = {"timeout_ms": int(settings.ANALYTICS_STATEMENT_TIMEOUT_MS), "row_cap": int(settings.ANALYTICS_ROW_CAP)}
    if dialect == "postgres":
        run = _run_postgres(url, checked.sql, costed=True, **bounds)
    else:
        run = _run_sqlite(url, checked.sql, aliases=table_aliases(checked.tree), **bounds)
    return QueryResult(
        sql=checked.sql,
        columns=run.columns,
        rows=run.bounded.rows,
        truncated=run.bounded.truncated,
        elapsed_ms=(time.perf_counter() - started) * 1000,
        cache_key=cache_key_for(checked.sql, url),
        notes=run.bounded.notes,
        plan=run.plan,
    )


def run_checked_query(sql: str, *, url: str | None = None) -> QueryResult:
    """Guard, cost check, then run; raises `SqlRefused` (nothing ran) or `AnalyticsError`.

    When the primary cannot be connected to at all and `ANALYTICS_FALLBACK_DATABASE_URL` is set,
    the replica answers (checked for its own dialect) with `source="fallback"` and a note; a
    query that failed on a reachable primary is not retried there."""
    url = url or conf.analytics_database_url()
    try:
        return _run_on(url, sql)
    except AnalyticsUnreachable as error:
        fallback = str(settings.ANALYTICS_FALLBACK_DATABASE_URL)
        if not fallback or fallback == url:
            raise
        result = _run_on(fallback, sql)
        note = f"Answered by the fallback database (ANALYTICS_FALLBACK_DATABASE_URL): {error}"
        return replace(result, source="fallback", notes=[note, *result.notes])


__all__ = ["AnalyticsError", "AnalyticsUnreachable", "QueryResult", "SqlRefused", "run_checked_query",
           "table_columns"]
