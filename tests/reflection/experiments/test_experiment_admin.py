"""The experiment page: arms with 95 % intervals, the statistic as an SVG chart, the decision,
links both ways, and rollback (confirmation, required note) / promote as reviewer actions."""
from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry

from casebank.models import Case
from reflection.experiments.readout import wilson_interval
from reflection.experiments.services import experiment_evaluate
from reflection.models import Experiment, ExperimentStatus, SuggestionStatus
from tests.reflection.experiments.support import approved_experiment, keys, send_runs, suggestion_of

pytestmark = pytest.mark.django_db
LIST = "/admin/reflection/experiment/"


def _post(client, experiment, action, **extra):
    return client.post(LIST, {"action": action, "_selected_action": [experiment.pk], **extra})


@pytest.fixture
def looked_at(make_case, reviewer, api) -> Experiment:
    experiment = approved_experiment(make_case, reviewer)
    send_runs(api, experiment, keys=keys(300), current_rate=0.5, candidate_rate=0.5)
    experiment = experiment_evaluate(experiment=experiment)
    send_runs(api, experiment, keys=keys(300, "later"), current_rate=0.5, candidate_rate=0.5)
    return experiment_evaluate(experiment=experiment)


def test_the_page_shows_arms_intervals_chart_and_links(client, reviewer, looked_at):
    client.force_login(reviewer)
    page = client.get(f"{LIST}{looked_at.pk}/change/").content.decode()

    current, candidate = looked_at.detail["current"], looked_at.detail["candidate"]
    low, high = wilson_interval(candidate["successes"], candidate["runs"])
    assert f"{candidate['runs']:,}" in page and f"{current['runs']:,}" in page
    assert f"{low:.1%} – {high:.1%}" in page
    assert "Running (canary)" in page and "20%" in page and "80%" in page
    svg = re.search(r"<svg[^>]*experiment-chart.*?</svg>", page, re.S).group(0)
    assert svg.count("<circle") == 2 and "20 (decide)" in svg
    assert f"/admin/reflection/suggestion/{looked_at.suggestion_id}/change/" in page
    assert f"/admin/casebank/case/{looked_at.case_id}/change/" in page
    assert "Roll back…" in page and "Promote v2" not in page
    assert "<script" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_the_suggestion_links_back_and_reads_its_experiment(client, reviewer, looked_at):
    client.force_login(reviewer)
    page = client.get(f"/admin/reflection/suggestion/{looked_at.suggestion_id}/change/").content.decode()
    assert f"/admin/reflection/experiment/{looked_at.pk}/change/" in page
    assert "Running (canary)" in page
    listing = client.get("/admin/reflection/suggestion/").content.decode()
    assert "Approved · " in listing and "Approved and applied" not in listing


def test_rollback_asks_for_a_confirmation_and_a_note(client, reviewer, looked_at):
    client.force_login(reviewer)
    confirm = _post(client, looked_at, "rollback_selected")
    assert confirm.status_code == 200 and "Yes, roll back" in confirm.content.decode()
    missing = _post(client, looked_at, "rollback_selected", apply="1", note="")
    assert "A note is required to roll back" in missing.content.decode()
    assert Experiment.objects.get(pk=looked_at.pk).status == ExperimentStatus.RUNNING

    done = _post(client, looked_at, "rollback_selected", apply="1", note="support tickets doubled")

    assert done.status_code == 302
    experiment = Experiment.objects.get(pk=looked_at.pk)
    assert (experiment.status, experiment.decision_note) == (ExperimentStatus.ROLLED_BACK, "support tickets doubled")
    assert suggestion_of(experiment).status == SuggestionStatus.ROLLED_BACK
    assert LogEntry.objects.filter(object_id=str(experiment.pk), user=reviewer).exists()
    page = client.get(f"{LIST}{experiment.pk}/change/").content.decode()
    assert "Rolled back (candidate retired)" in page and "support tickets doubled" in page
    assert "Promote v2" in page  # the one-click override


def test_promote_from_awaiting_review(client, reviewer, make_case, api, settings):
    settings.EXPERIMENT_AUTO_PROMOTE = False
    experiment = approved_experiment(make_case, reviewer)
    send_runs(api, experiment, keys=keys(2_000), current_rate=0.4, candidate_rate=0.7)
    experiment = experiment_evaluate(experiment=experiment)
    assert experiment.status == ExperimentStatus.AWAITING_REVIEW
    client.force_login(reviewer)
    assert "Promote v2" in client.get(f"{LIST}{experiment.pk}/change/").content.decode()

    _post(client, experiment, "promote_selected", apply="1")

    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.PROMOTED
    assert Case.objects.get(pk=experiment.case_id).version == 2


def test_an_onlooker_sees_the_page_but_cannot_decide(client, onlooker, looked_at):
    from tests.conftest import grant

    grant(onlooker, "view_experiment")
    client.force_login(onlooker)
    page = client.get(f"{LIST}{looked_at.pk}/change/")
    assert page.status_code == 200 and "Roll back…" not in page.content.decode()
    _post(client, looked_at, "rollback_selected", apply="1", note="sneaky")
    assert Experiment.objects.get(pk=looked_at.pk).status == ExperimentStatus.RUNNING


def test_the_list_reads_in_plain_words(client, reviewer, looked_at):
    client.force_login(reviewer)
    page = client.get(LIST).content.decode()
    assert "Running (canary)" in page and "v2:" in page and "v1:" in page
    assert client.get(f"{LIST}?status=rolled_back").status_code == 200


def test_wilson_interval_matches_hand_computed_values():
    low, high = wilson_interval(40, 100)
    assert (round(low, 4), round(high, 4)) == (0.3094, 0.4980)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0.2
    assert wilson_interval(0, 0) is None
