"""Issue #13 and #15: a reviewer approves a pending suggestion in a real browser; the revised
plan becomes candidate v2 on a canary, and the experiment page shows it beside v1."""
from __future__ import annotations

from playwright.sync_api import Page, expect

from casebank.models import Case, CaseVersion
from reflection.models import Experiment, Suggestion, SuggestionStatus
from tests.e2e.admin_login import log_in
from tests.reflection.suggestion_helpers import PLAN, REVISED, make_suggestion


def test_it_approves_a_pending_suggestion_and_shows_its_experiment(page: Page, make_case, reviewer, tmp_path):
    # `reviewer` holds the production role, not superuser: approving must work with exactly that.
    case = make_case(plan=PLAN)
    suggestion = make_suggestion(case)

    log_in(page, "reviewer")

    page.goto(f"/admin/reflection/pendingsuggestion/{suggestion.pk}/change/")
    expect(page.locator("body")).to_contain_text("Proposed plan")
    page.get_by_role("button", name="Approve…").click()
    # The action's confirmation page: nothing is applied until "Yes, approve".
    expect(page.get_by_role("button", name="Yes, approve")).to_be_visible()
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.PENDING
    page.fill("#id_note", "Approved in the browser")
    page.get_by_role("button", name="Yes, approve").click()
    expect(page.locator("ul.messagelist")).to_contain_text("1 suggestion(s) approved.")

    experiment = Experiment.objects.get(suggestion=suggestion)
    page.goto(f"/admin/reflection/suggestion/{suggestion.pk}/change/")
    page.get_by_role("link", name=f"#{experiment.pk}", exact=True).click()
    expect(page.locator(".field-status_view")).to_contain_text("Running (canary)")
    expect(page.locator("table.experiment-arms")).to_contain_text("v2")
    expect(page.locator("table.experiment-arms")).to_contain_text("20%")
    expect(page.get_by_role("button", name="Roll back…")).to_be_visible()

    case = Case.objects.get(pk=case.pk)
    assert (case.version, case.plan) == (1, PLAN)  # the candidate is served to the canary only
    assert CaseVersion.objects.get(case=case, version=2).plan == REVISED
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.reviewed_by, suggestion.review_note) == (
        SuggestionStatus.APPROVED, reviewer, "Approved in the browser")

    shot = tmp_path / "experiment.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 1000
