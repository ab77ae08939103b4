"""Issue #15: on a running experiment's page a reviewer sees both arms and the statistic's chart
at 1,440 px, rolls the canary back through the confirmation page with a note, and the page and
the suggestion then read "Rolled back"."""
from __future__ import annotations

from playwright.sync_api import Page, expect

from reflection.experiments.services import experiment_evaluate
from reflection.models import Experiment, ExperimentStatus, Suggestion, SuggestionStatus
from tests.e2e.admin_login import log_in
from tests.reflection.experiments.support import approved_experiment, backdated_runs


def test_it_rolls_back_a_canary_with_a_note(page: Page, make_case, reviewer, tmp_path):
    from datetime import timedelta

    experiment = approved_experiment(make_case, reviewer)
    for hours in (3, 2, 1):
        backdated_runs(experiment.case_id, version=1, runs=30, successes=15, age=timedelta(hours=hours))
        backdated_runs(experiment.case_id, version=2, runs=8, successes=5, age=timedelta(hours=hours))
        experiment = experiment_evaluate(experiment=experiment)
    page.set_viewport_size({"width": 1440, "height": 900})
    log_in(page, "reviewer")

    page.goto(f"/admin/reflection/experiment/{experiment.pk}/change/")
    expect(page.locator("table.experiment-arms")).to_contain_text("90")
    expect(page.locator("svg.experiment-chart circle")).to_have_count(3)
    # Fits the width: nothing scrolls sideways at 1,440 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    page.get_by_role("button", name="Roll back…").click()
    expect(page.get_by_role("button", name="Yes, roll back")).to_be_visible()
    page.fill("#id_note", "the new timeout hides real failures")
    page.get_by_role("button", name="Yes, roll back").click()
    expect(page.locator("ul.messagelist")).to_contain_text("1 experiment(s) rolled back.")

    page.goto(f"/admin/reflection/experiment/{experiment.pk}/change/")
    expect(page.locator(".field-status_view")).to_contain_text("Rolled back")
    expect(page.locator(".field-decision_note")).to_contain_text("the new timeout hides real failures")
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.ROLLED_BACK
    assert Suggestion.objects.get(pk=experiment.suggestion_id).status == SuggestionStatus.ROLLED_BACK
    page.goto(f"/admin/reflection/suggestion/{experiment.suggestion_id}/change/")
    expect(page.locator(".field-status_view")).to_contain_text("Rolled back")
    shot = tmp_path / "experiment-rolled-back.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 1000
