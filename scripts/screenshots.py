"""Screenshots of the admin as a new user sees it, for docs/img/ (a dev tool, not a test).

Needs a running server with the demo data (`make run`), an admin login, Debian's chromium and
the `playwright` package (`pip install playwright`; it drives /usr/bin/chromium, nothing is
downloaded). Usage:

    python scripts/screenshots.py http://127.0.0.1:8000 USER PASSWORD [OUT_DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network: without them Chromium keeps calling home and is refused.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
DEGRADING_TITLE = "Root causes of tickets"
DEMO_SESSION_QUERY = "Show revenue by region"  # seed_demo's session (agents.demo.cases.DEMO_SESSION_QUERY)
PAGES = [
    ("dashboard", "/admin/"),
    ("case-list", "/admin/casebank/case/"),
    ("log-list", "/admin/reflection/executionlog/"),
    ("approval-queue", "/admin/reflection/pendingsuggestion/"),
    ("session-list", "/admin/agents/session/"),
]


FIRST_ROW_LINK = "#result_list tbody tr th a"


def _follow(page: Page, link: Locator, shot: Path) -> bool:
    """Open `link` if the page has it and take a full-page screenshot; whether it was there."""
    if not link.count():
        return False
    link.click()
    page.wait_for_load_state("load")
    page.screenshot(path=str(shot), full_page=True)
    print(f"{shot.stem}: {page.title()}")
    return True


def main(base: str, user: str, password: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{base}/admin/login/")
        page.fill("#id_username", user)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/admin/")
        for name, path in PAGES:
            page.goto(base + path)
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(f"{name}: {page.title()}")
        # The first pending suggestion (evidence and plan diff) and a case's change page.
        page.goto(base + "/admin/reflection/pendingsuggestion/")
        if _follow(page, page.locator(FIRST_ROW_LINK).first, out / "approval-console.png"):
            # Its case: in warning, with this suggestion pending (the plan editor, versions, links).
            _follow(page, page.locator('.field-case_link a[href*="/admin/casebank/case/"]').first, out / "case-change.png")
        # The demo session (seed_demo): answer, result table, chart, sources, timeline.
        page.goto(base + "/admin/agents/session/?q=" + DEMO_SESSION_QUERY.replace(" ", "+"))
        _follow(page, page.locator(FIRST_ROW_LINK).first, out / "session.png")
        # The demo's running experiment (seed_demo approves a suggestion): arms, statistic, chart.
        page.goto(base + "/admin/reflection/experiment/")
        _follow(page, page.locator(FIRST_ROW_LINK).first, out / "experiment.png")
        # A case's analysis page: the demo's degrading case if it is there, else the first listed.
        page.goto(base + "/admin/reflection/caseanalysis/")
        analyses = page.locator('a[href*="/admin/reflection/caseanalysis/case/"]')
        degrading = analyses.filter(has_text=DEGRADING_TITLE)
        _follow(page, degrading.first if degrading.count() else analyses.first, out / "case-analysis.png")
        browser.close()


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], Path(sys.argv[4] if len(sys.argv) > 4 else "docs/img"))
