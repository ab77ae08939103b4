from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from casebank.access import services
from casebank.access.scopes import ALL_SCOPES, DEFAULT_SCOPES
from casebank.models import ApiTier
from core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create an API key for a client and print it (it is shown only this once). Without --scope the key gets "
        f"the agent scopes ({', '.join(DEFAULT_SCOPES)}); a reviewer's key: "
        "--scope cases:read --scope reflection --scope review --user REVIEWER."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="A unique name for the client, e.g. 'planner-prod'.")
        parser.add_argument("--tier", choices=ApiTier.values, default=ApiTier.STANDARD)
        parser.add_argument(
            "--scope", action="append", dest="scopes", metavar="SCOPE",
            help=f"What the key may do; repeat for several. One of: {', '.join(ALL_SCOPES)}.",
        )
        parser.add_argument("--all-scopes", action="store_true", help="Every scope (an operator's key).")
        parser.add_argument(
            "--user", metavar="USERNAME",
            help="Act as this existing user and with its permissions (default: a new service user api-NAME "
                 "with none, so plan edits, rollbacks and reviews are refused whatever the scopes).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all_scopes"] and options["scopes"]:
            raise CommandError("Give --scope or --all-scopes, not both.")
        scopes = ALL_SCOPES if options["all_scopes"] else options["scopes"]
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named '{options['user']}'. Create it first (createsuperuser, or in admin).")
        try:
            api_key, plain = services.api_key_create(name=options["name"], tier=options["tier"], user=user, scopes=scopes)
        except DomainError as error:
            raise CommandError(error.message) from None
        self.stderr.write(
            f"Created {api_key.tier} key '{api_key.name}' for user '{api_key.user.get_username()}' with scopes "
            f"{', '.join(api_key.scopes)}. Store it now; it is not kept."
        )
        self.stdout.write(plain)
