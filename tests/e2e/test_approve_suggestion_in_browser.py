"""Issue #13: a reviewer approves a pending suggestion in a real browser and sees case v2."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from casebank.models import Case
from reflection.models import Suggestion, SuggestionStatus
from tests.reflection.suggestion_helpers import PLAN, REVISED, make_suggestion


def test_it_approves_a_pending_suggestion_and_shows_case_version_2(page: Page, make_case, reviewer, tmp_path):
    # `reviewer` holds the production role, not superuser: approving must work with exactly that.
    case = make_case(plan=PLAN)
    suggestion = make_suggestion(case)

    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "reviewer")
    page.fill("#id_password", "pw")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))

    page.goto(f"/admin/reflection/pendingsuggestion/{suggestion.pk}/change/")
    expect(page.locator("body")).to_contain_text("Proposed plan")
    page.get_by_role("button", name="Approve…").click()
    # The action's confirmation page: nothing is applied until "Yes, approve".
    expect(page.get_by_role("button", name="Yes, approve")).to_be_visible()
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.PENDING
    page.fill("#id_note", "Approved in the browser")
    page.get_by_role("button", name="Yes, approve").click()
    expect(page.locator("ul.messagelist")).to_contain_text("1 suggestion(s) approved.")

    page.goto(f"/admin/casebank/case/{case.pk}/change/")
    expect(page.locator(".field-version .readonly")).to_have_text("2")
    expect(page.locator(".field-plan")).to_contain_text("with a 30 s statement timeout")
    expect(page.locator("body")).to_contain_text(f"suggestion #{suggestion.pk}")

    case = Case.objects.get(pk=case.pk)
    assert (case.version, case.plan) == (2, REVISED)
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.applied_version, suggestion.reviewed_by, suggestion.review_note) == (
        SuggestionStatus.APPROVED, 2, reviewer, "Approved in the browser")

    shot = tmp_path / "case-v2.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 1000
