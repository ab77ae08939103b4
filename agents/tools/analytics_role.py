"""The PostgreSQL role Text2SQL runs as: SELECT on the allow-listed tables and nothing else.

The guard (`sql_guard`) is the first layer; this one holds when the guard is wrong. The
analytics transaction switches to the role (`SET LOCAL ROLE`, `ANALYTICS_ROLE`) after setting
its bounds, or a deployment logs in as the role itself (`--login`: the role's own settings then
make every transaction read-only and bounded, and it cannot switch back to a stronger role).
"""
from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

_SCHEMA = "public"


def analytics_role_setup(
    *, url: str, role: str, tables: Sequence[str], login: bool = False, password: str = "",
    statement_timeout_ms: int, work_mem: str, temp_file_limit: str,
) -> list[str]:
    """Create or update `role` so it may only SELECT `tables` (idempotent); returns what was done.

    Privileges on every other table of the schema are revoked, so a table dropped from the
    allow-list stops being readable on the next run."""
    done: list[str] = []
    name = sql.Identifier(role)
    with psycopg.connect(url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(name))
            done.append(f"created role {role}")
        # NOINHERIT: the role never acts with the privileges of roles it might be granted later.
        attributes = "LOGIN" if login else "NOLOGIN"
        connection.execute(sql.SQL(
            "ALTER ROLE {} " + attributes + " NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
        ).format(name))
        if password:
            connection.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(password)))
        # Apply when logging in as the role (SET ROLE does not read them; the transaction sets its own).
        for setting, value in (("default_transaction_read_only", "on"), ("statement_timeout", str(statement_timeout_ms)),
                               ("work_mem", work_mem), ("temp_file_limit", temp_file_limit),
                               ("max_parallel_workers_per_gather", "0")):
            connection.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(name, sql.Identifier(setting),
                                                                           sql.Literal(value)))
        done.append(f"{role}: {attributes}, read-only transactions, statement_timeout {statement_timeout_ms} ms, "
                    f"work_mem {work_mem}, temp_file_limit {temp_file_limit}")
        schema = sql.Identifier(_SCHEMA)
        connection.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, name))
        connection.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(schema, name))
        connection.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, name))
        database = connection.execute("SELECT current_database()").fetchone()
        assert database is not None  # always one row
        connection.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database[0]), name))
        present = {row[0] for row in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)", (_SCHEMA, list(tables)),
        )}
        for table in tables:
            if table in present:
                connection.execute(sql.SQL("GRANT SELECT ON {}.{} TO {}").format(schema, sql.Identifier(table), name))
        done.append(f"SELECT granted on {', '.join(t for t in tables if t in present) or 'no table'}")
        missing = [t for t in tables if t not in present]
        if missing:
            done.append(f"not found (nothing granted): {', '.join(missing)}")
        # A login that is not a superuser may only SET ROLE to a role it is a member of.
        superuser = connection.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if not (superuser and superuser[0]):
            connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name))
            done.append(f"granted {role} to the current login, which may now SET ROLE to it")
    return done


def analytics_role_drop(*, url: str, role: str) -> None:
    """Remove the role and its privileges in this database (tests; decommissioning)."""
    with psycopg.connect(url, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
