"""Logging in to admin through its form, as a person does (the tests' users have password "pw")."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def log_in(page: Page, username: str, *, next_path: str = "/admin/") -> None:
    page.goto(f"/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path) + "$"))
