from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection
from tqdm import tqdm

from agents.demo import cases as demo_cases
from agents.demo import data as demo_data
from agents.demo.experiment import seed_experiment
from agents.knowledge.services import documents_load_path
from agents.runtime.supervisor import run_session
from agents.sessions.models import Session
from agents.sessions.services import session_create
from reflection.analysis import services as reflection_services

DEMO_ACTOR = "seed_demo"


class Command(BaseCommand):
    help = (
        "Seed the demo: ~50 cases across categories and ~10,000 execution logs over 30 days "
        "with known failure patterns, analysed once so admin shows their figures, a running "
        "experiment with runs on both arms, a sample analytics database and knowledge documents. "
        "Idempotent: running it again adds nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--logs", type=int, default=demo_cases.LOG_COUNT, help="How many demo logs.")
        parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["no_progress"]
        with tqdm(total=len(demo_cases.DEMO_CASES), desc="cases", disable=quiet, file=self.stderr) as bar:
            cases = demo_cases.seed_cases(on_progress=bar.update)
        with tqdm(total=options["logs"], desc="logs", disable=quiet, file=self.stderr) as bar:
            logs = demo_cases.seed_logs(count=options["logs"], on_progress=bar.update)
        analysed = self._analyse(quiet) if logs else ""
        # An approved suggestion's canary with runs on both arms (reflection.experiments).
        experiment = seed_experiment()
        # The supervisor's side: a sample analytics database and knowledge documents.
        analytics = demo_data.seed_analytics()
        with tqdm(desc="documents", disable=quiet, file=self.stderr) as bar:
            _, documents = documents_load_path(demo_data.DEMO_DOCS_DIR, on_progress=bar.update)
        session = self._session()
        self.stdout.write(self.style.SUCCESS(
            f"Demo seeded: {cases} new case(s), {logs} new log(s), {documents} new document(s)"
            f"{', analytics database created' if analytics else ''}{analysed}{session}"
            f"{f', experiment #{experiment.pk} running' if experiment else ''}."
        ))

    def _session(self) -> str:
        """One finished supervisor session, so the session page shows an answer, its rows and
        chart at first sight. Its case carries the SQL, so no LLM is needed."""
        if Session.objects.filter(created_by=DEMO_ACTOR).exists():
            return ""
        session = session_create(query=demo_cases.DEMO_SESSION_QUERY, actor=DEMO_ACTOR)
        if connection.in_atomic_block:
            # The session's workers write on their own connections, which would wait forever for
            # this uncommitted transaction: the runner takes the session once it commits.
            return ", a demo session queued"
        finished = run_session(session_id=session.id)
        return f", a demo session {finished.status if finished else 'queued'}"

    def _analyse(self, quiet: bool) -> str:
        """Analyse the new demo logs now, so a first look at admin shows every case's success
        rate, warnings and suggestions instead of waiting for the nightly run."""
        case_ids = [demo_cases.demo_case_id(case.slug) for case in demo_cases.DEMO_CASES]
        with tqdm(total=len(case_ids), desc="analysis", unit="case", disable=quiet, file=self.stderr) as bar:
            run = reflection_services.reflection_run_here(
                requested_by="manage.py seed_demo", case_ids=case_ids, progress=bar.update
            )
        return f", {run.cases_analysed} case(s) analysed ({run.warnings_set} warning(s) set)"
