from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from agents.runtime.runner import RunnerConfig, SessionRunner, limit_malloc_arenas, run_forever


class Command(BaseCommand):
    help = ("Run supervisor sessions: one process, hundreds of sessions on one event loop, claimed from the "
            "database with leases (see docs/agents.md). SIGTERM finishes or hands back the sessions in hand.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--capacity", type=int, help="Sessions held at once (AGENTS_RUNNER_CAPACITY).")
        parser.add_argument("--db-threads", type=int, help="Threads for database work (AGENTS_RUNNER_DB_THREADS).")
        parser.add_argument("--worker-threads", type=int,
                            help="Threads for the agents' SQL and search (AGENTS_RUNNER_WORKER_THREADS).")
        parser.add_argument("--llm-connections", type=int,
                            help="Connections of the one AsyncOpenAI pool (AGENTS_RUNNER_LLM_CONNECTIONS; 0: capacity).")
        parser.add_argument("--lease", type=float, dest="lease_seconds", help="Lease in seconds (AGENTS_RUNNER_LEASE_S).")
        parser.add_argument("--name", help="This runner's name in the leases (default host:pid:random).")

    def handle(self, *args: Any, **options: Any) -> None:
        config = RunnerConfig.from_settings(
            capacity=options["capacity"], db_threads=options["db_threads"], worker_threads=options["worker_threads"],
            llm_connections=options["llm_connections"], lease_seconds=options["lease_seconds"],
        )
        limit_malloc_arenas(int(settings.AGENTS_RUNNER_MALLOC_ARENAS))
        runner = SessionRunner(config, name=options["name"])
        self.stdout.write(f"Session runner {runner.name}: capacity {config.capacity}, "
                          f"{config.db_threads} db / {config.worker_threads} worker threads, "
                          f"{config.llm_pool_size} LLM connections, lease {config.lease_seconds:g} s")
        self.stdout.flush()
        run_forever(runner)
        self.stdout.write(f"Session runner {runner.name} stopped after {runner.finished} session(s).")
