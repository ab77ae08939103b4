"""The ramp on an experiment's page at 1,440 px: its steps (an automatic one with the ramp
rule's reason), and a reviewer setting the share through the confirmation page."""
from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import Page, expect

from reflection.experiments.services import experiment_evaluate
from reflection.models import Experiment
from tests.e2e.admin_login import log_in
from tests.reflection.experiments.support import approved_experiment, backdated_runs


def test_a_reviewer_reads_the_ramp_and_sets_the_share(page: Page, make_case, reviewer, settings):
    settings.EXPERIMENT_RAMP = (0.2, 0.5)
    experiment = approved_experiment(make_case, reviewer)
    backdated_runs(experiment.case_id, version=1, runs=400, successes=200, age=timedelta(hours=2))
    backdated_runs(experiment.case_id, version=2, runs=100, successes=60, age=timedelta(hours=2))
    experiment = experiment_evaluate(experiment=experiment)
    assert experiment.candidate_share == 0.5  # the ramp rule moved it

    page.set_viewport_size({"width": 1440, "height": 900})
    log_in(page, "reviewer")

    page.goto(f"/admin/reflection/experiment/{experiment.pk}/change/")
    steps = page.locator("table.experiment-steps")
    expect(steps).to_contain_text("rules out a regression beyond 10%")
    expect(steps.locator("tr")).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440

    page.get_by_role("button", name="Set the share…").click()
    page.fill("#id_share", "0.3")
    page.fill("#id_note", "support is short-staffed this week")
    page.get_by_role("button", name="Yes, set the share").click()
    expect(page.locator("ul.messagelist")).to_contain_text("1 experiment(s): share set.")
    changed = Experiment.objects.get(pk=experiment.pk)
    assert (changed.candidate_share, changed.ramp_held) == (0.3, True)
