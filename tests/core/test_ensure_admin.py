"""`ensure_admin --login-file`: the first login reaches `make run`'s banner, and only while it works."""
from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_it_writes_the_first_login_for_the_banner_and_only_once(tmp_path):
    login_file = tmp_path / "var" / "first-admin-login.txt"
    call_command("ensure_admin", "--login-file", str(login_file), stdout=io.StringIO())
    username, _, password = login_file.read_text().strip().partition(" / ")
    assert authenticate(username=username, password=password) is not None
    assert login_file.stat().st_mode & 0o077 == 0  # a password: readable by its owner only

    call_command("ensure_admin", "--login-file", str(login_file), stdout=io.StringIO())
    assert login_file.read_text().strip() == f"{username} / {password}"  # still valid: kept
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_it_forgets_the_login_once_its_password_has_changed(tmp_path):
    login_file = tmp_path / "first-admin-login.txt"
    call_command("ensure_admin", "--login-file", str(login_file), stdout=io.StringIO())
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("changed by the operator")
    admin.save()
    call_command("ensure_admin", "--login-file", str(login_file), stdout=io.StringIO())
    assert not login_file.exists()
