from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agents import conf
from agents.tools.analytics import dialect_of
from agents.tools.analytics_role import analytics_role_setup

DEFAULT_ROLE = "caseloop_analytics"


class Command(BaseCommand):
    help = ("Create or update the PostgreSQL role Text2SQL runs as: SELECT on ANALYTICS_ALLOWED_TABLES only, "
            "read-only and bounded (idempotent; see docs/agents.md). Then set ANALYTICS_ROLE to it, or log in as it.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--role", help=f"Role name (default ANALYTICS_ROLE, else {DEFAULT_ROLE}).")
        parser.add_argument("--database-url", help="An administrator's URL of the analytics database "
                                                   "(default ANALYTICS_DATABASE_URL).")
        parser.add_argument("--login", action="store_true", help="Let the role log in (else NOLOGIN, for SET ROLE).")
        parser.add_argument("--password-env", help="Name of an environment variable holding the role's password.")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["database_url"] or conf.analytics_database_url()
        if dialect_of(url) != "postgres":
            raise CommandError("The analytics database is not PostgreSQL; SQLite is opened read-only (mode=ro) instead.")
        password = os.environ.get(options["password_env"], "") if options["password_env"] else ""
        if options["password_env"] and not password:
            raise CommandError(f"The environment variable {options['password_env']} is empty.")
        role = options["role"] or settings.ANALYTICS_ROLE or DEFAULT_ROLE
        done = analytics_role_setup(
            url=url, role=role, tables=list(settings.ANALYTICS_ALLOWED_TABLES), login=options["login"],
            password=password, statement_timeout_ms=int(settings.ANALYTICS_STATEMENT_TIMEOUT_MS),
            work_mem=str(settings.ANALYTICS_WORK_MEM), temp_file_limit=str(settings.ANALYTICS_TEMP_FILE_LIMIT),
        )
        for line in done:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Role {role} is ready; set ANALYTICS_ROLE={role}."))
