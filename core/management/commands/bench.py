"""Run the benchmarks in tests/bench against a fresh database and write docs/benchmarks.md."""
from __future__ import annotations

import importlib
import pkgutil
import platform
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

RESULTS_FILE = Path(settings.BASE_DIR) / "docs" / "benchmarks.md"
SECTION_START = "<!-- bench:{name} -->"
SECTION_END = "<!-- /bench:{name} -->"


def discover() -> dict[str, Any]:
    import tests.bench as package

    modules = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("bench_"):
            module = importlib.import_module(f"tests.bench.{info.name}")
            modules[module.NAME] = module
    return modules


def _cpu_times() -> list[int] | None:
    try:
        with open("/proc/stat") as stat:
            return [int(value) for value in stat.readline().split()[1:9]]
    except OSError:
        return None


def steal_share(before: list[int] | None, after: list[int] | None) -> str:
    """Share of CPU time the hypervisor gave to other guests while a benchmark ran ("st" in
    top): on a shared VM every figure here is that much slower than the machine itself."""
    if before is None or after is None:
        return "unknown"
    delta = [b - a for a, b in zip(before, after, strict=False)]
    return f"{delta[7] / max(sum(delta), 1):.0%}"


def replace_section(document: str, name: str, body: str) -> str:
    start, end = SECTION_START.format(name=name), SECTION_END.format(name=name)
    block = f"{start}\n{body.strip()}\n{end}"
    if start in document and end in document:
        before, rest = document.split(start, 1)
        _, after = rest.split(end, 1)
        return f"{before}{block}{after}"
    return f"{document.rstrip()}\n\n{block}\n"


def _command(only: list[str]) -> str:
    """What to type to get this section again (one benchmark alone, or all of them)."""
    return "make bench" if not only else "python scripts/run_bench.py " + " ".join(f"--only {n}" for n in only)


class Command(BaseCommand):
    help = "Run the benchmarks (tests/bench) on a fresh database and update docs/benchmarks.md."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--only", action="append", default=[], help="Run only this benchmark (repeatable).")
        parser.add_argument("--list", action="store_true", help="List the benchmarks and exit.")
        parser.add_argument("--no-write", action="store_true", help="Print the results, do not touch docs/.")

    def handle(self, *args: Any, **options: Any) -> None:
        benches = discover()
        if options["list"]:
            for name, module in sorted(benches.items()):
                self.stdout.write(f"{name}: {module.TITLE}")
            return
        unknown = set(options["only"]) - set(benches)
        if unknown:
            raise CommandError(f"Unknown benchmark(s): {', '.join(sorted(unknown))}. Try --list.")
        selected = {n: m for n, m in sorted(benches.items()) if not options["only"] or n in options["only"]}

        # A throwaway database, like the test runner's: benchmarks never touch real data.
        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
        context = {
            "database": connection.vendor,
            "database_label": __import__("os").environ.get("BENCH_DATABASE_LABEL", connection.vendor),
            "stdout": self.stdout,
        }
        sections: dict[str, str] = {}
        steals: dict[str, str] = {}
        try:
            for name, module in selected.items():
                self.stdout.write(self.style.MIGRATE_HEADING(f"== {module.TITLE}"))
                started, cpu_before = time.perf_counter(), _cpu_times()
                sections[name] = module.run(context)
                steals[name] = steal_share(cpu_before, _cpu_times())
                self.stdout.write(sections[name])
                self.stdout.write(f"({time.perf_counter() - started:.1f} s, CPU steal {steals[name]})\n")
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)

        if options["no_write"]:
            return
        document = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "# Benchmarks\n"
        stamp = (
            f"_Last run {timezone.now():%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'} "
            f"({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores), "
            f"{context['database_label']}, command `{_command(options['only'])}`._"
        )
        for name, body in sections.items():
            stolen = f" CPU time stolen by the hypervisor during this benchmark: {steals[name]}."
            document = replace_section(document, name, f"{body.strip()}\n\n{stamp[:-1]}{stolen}_")
        RESULTS_FILE.write_text(document)
        self.stdout.write(self.style.SUCCESS(f"Wrote {RESULTS_FILE.relative_to(settings.BASE_DIR)}"))
