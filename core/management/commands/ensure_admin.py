from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the first admin login if no superuser exists yet; print it once, and with "
        "--login-file also write it there (for `make run`'s banner, which shows it last)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--login-file", type=Path, help="Write the new login here (mode 600).")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        login_file: Path | None = options["login_file"]
        if users.filter(is_superuser=True).exists():
            _forget_changed_login(login_file)
            self.stdout.write(
                "An admin login exists already (reset it with `manage.py changepassword admin`)."
            )
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser(options["username"], email="", password=password)
        login = f"{options['username']} / {password}"
        if login_file is not None:
            login_file.parent.mkdir(parents=True, exist_ok=True)
            login_file.touch(mode=0o600)
            login_file.write_text(login + "\n")
        self.stdout.write(self.style.SUCCESS(f"Admin login created: {login}"))


def _forget_changed_login(login_file: Path | None) -> None:
    """The banner shows the first login only while it still works: once its password has been
    changed (or the user removed), the file goes."""
    if login_file is None or not login_file.exists():
        return
    username, _, password = login_file.read_text().strip().partition(" / ")
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not user.check_password(password):
        login_file.unlink()
