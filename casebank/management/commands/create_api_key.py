from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from casebank.access import services
from casebank.models import ApiTier
from core.errors import DomainError


class Command(BaseCommand):
    help = "Create an API key for a client and print it (it is shown only this once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="A unique name for the client, e.g. 'planner-prod'.")
        parser.add_argument("--tier", choices=ApiTier.values, default=ApiTier.STANDARD)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            api_key, plain = services.api_key_create(name=options["name"], tier=options["tier"])
        except DomainError as error:
            raise CommandError(error.message) from None
        self.stderr.write(f"Created {api_key.tier} key '{api_key.name}'. Store it now; it is not kept.")
        self.stdout.write(plain)
