"""Issue #19: the admin home's figures, as a person sees them, match the database, and each
link lands on the admin list of exactly those rows."""
from __future__ import annotations

from playwright.sync_api import Page, expect

from agents.models import Session, SessionStatus
from casebank.models import Case, CaseStatus
from reflection.models import Suggestion, SuggestionStatus, Verification
from tests.config.dashboard_data import fill_loop
from tests.e2e.admin_login import log_in

FIGURES = {
    # figure key: the database's own count of the rows it stands for
    "pending_suggestions": lambda: Suggestion.objects.filter(status=SuggestionStatus.PENDING).count(),
    "new_cases": lambda: Case.objects.filter(review_state="pending").count(),
    "regressions": lambda: Suggestion.objects.filter(status=SuggestionStatus.APPROVED,
                                                     verification=Verification.REGRESSED).count(),
    "experiments_deciding": lambda: Suggestion.objects.filter(status=SuggestionStatus.APPROVED,
                                                              verification=Verification.PENDING).count(),
    "cases_warning": lambda: Case.objects.filter(status=CaseStatus.WARNING).count(),
    f"sessions_{SessionStatus.FAILED}": lambda: Session.objects.filter(status=SessionStatus.FAILED).count() - 1,  # one is 2 days old
}


def test_it_shows_the_databases_counts_and_links_to_the_filtered_lists(page: Page, make_case, superuser):
    fill_loop(make_case)
    log_in(page, "root")
    expect(page.locator("#dashboard svg").first).to_be_visible()

    for key, expected in FIGURES.items():
        page.goto("/admin/")
        figure = page.locator(f'[data-figure="{key}"]')
        shown = int(figure.locator(".value").inner_text().replace(",", ""))
        assert shown == expected(), key
        figure.click()
        expect(page.locator("#changelist")).to_be_visible()
        assert page.locator("#result_list tbody tr").count() == shown, f"{key}: {page.url}"
