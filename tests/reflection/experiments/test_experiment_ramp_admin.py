"""The ramp on the experiment page: where it stands and its steps with times, and the reviewer's
controls (advance, hold, resume, set the share), each confirmed and recorded in the history."""
from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from reflection.models import Experiment, ExperimentStep
from tests.reflection.experiments.support import approved_experiment

pytestmark = pytest.mark.django_db
LIST = "/admin/reflection/experiment/"


@pytest.fixture
def experiment(make_case, reviewer, settings) -> Experiment:
    settings.EXPERIMENT_RAMP = (0.2, 0.5)
    return approved_experiment(make_case, reviewer)


def _post(client, experiment, action, **extra):
    return client.post(LIST, {"action": action, "_selected_action": [experiment.pk], **extra})


def test_the_page_shows_the_ramp_and_its_controls(client, reviewer, experiment):
    client.force_login(reviewer)
    page = client.get(f"{LIST}{experiment.pk}/change/").content.decode()
    assert "Step 1 of the ramp 20% → 50%" in page and "next: 50%" in page
    assert "The canary starts." in page
    for button in ("Advance to 50%…", "Hold the ramp…", "Set the share…"):
        assert button in page
    assert "Resume the ramp…" not in page


def test_advance_is_confirmed_then_recorded(client, reviewer, experiment):
    client.force_login(reviewer)
    confirm = _post(client, experiment, "advance_selected")
    assert confirm.status_code == 200 and "Yes, advance" in confirm.content.decode()
    assert Experiment.objects.get(pk=experiment.pk).candidate_share == 0.2

    done = _post(client, experiment, "advance_selected", apply="1", note="first runs look fine")

    assert done.status_code == 302
    assert Experiment.objects.get(pk=experiment.pk).candidate_share == 0.5
    step = ExperimentStep.objects.get(experiment=experiment, number=2)
    assert (step.started_by, step.reason) == ("reviewer", "first runs look fine")
    entry = LogEntry.objects.get(object_id=str(experiment.pk), user=reviewer)
    assert "advanced (share 50%): first runs look fine" in entry.change_message
    page = client.get(f"{LIST}{experiment.pk}/change/").content.decode()
    assert "Step 2 of the ramp" in page and "at its last step" in page and "Advance to" not in page


def test_set_share_asks_for_the_share_and_holds_the_ramp(client, reviewer, experiment):
    client.force_login(reviewer)
    confirm = _post(client, experiment, "set_share_selected").content.decode()
    assert 'name="share"' in confirm

    _post(client, experiment, "set_share_selected", apply="1", share="0.35")

    changed = Experiment.objects.get(pk=experiment.pk)
    assert (changed.candidate_share, changed.ramp_held) == (0.35, True)
    page = client.get(f"{LIST}{experiment.pk}/change/").content.decode()
    assert "held by a reviewer" in page and "Resume the ramp…" in page


@pytest.mark.parametrize("share", ["abc", "", "0", "1", "nan", "inf", "-0.5", "1e400"])
def test_a_bad_share_changes_nothing(client, reviewer, experiment, share):
    client.force_login(reviewer)
    response = _post(client, experiment, "set_share_selected", apply="1", share=share)
    assert response.status_code == 302
    assert Experiment.objects.get(pk=experiment.pk).candidate_share == 0.2
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("Not changed" in m for m in messages)


def test_hold_and_resume(client, reviewer, experiment):
    client.force_login(reviewer)
    _post(client, experiment, "hold_selected", apply="1")
    assert Experiment.objects.get(pk=experiment.pk).ramp_held
    _post(client, experiment, "resume_selected", apply="1")
    assert not Experiment.objects.get(pk=experiment.pk).ramp_held


def test_an_onlooker_sees_the_ramp_but_no_controls(client, onlooker, experiment):
    from tests.conftest import grant

    grant(onlooker, "view_experiment")
    client.force_login(onlooker)
    page = client.get(f"{LIST}{experiment.pk}/change/").content.decode()
    assert "Step 1 of the ramp" in page and "Set the share…" not in page
    _post(client, experiment, "advance_selected", apply="1")
    assert Experiment.objects.get(pk=experiment.pk).candidate_share == 0.2


def test_the_chart_marks_where_the_share_moved(client, reviewer, experiment):
    import re
    from datetime import timedelta

    from reflection.experiments.services import experiment_evaluate, experiment_ramp_advance
    from tests.reflection.experiments.support import backdated_runs

    for runs in (50, 60):
        backdated_runs(experiment.case_id, version=1, runs=runs, successes=runs // 2, age=timedelta(hours=1))
        experiment = experiment_evaluate(experiment=experiment)
    experiment_ramp_advance(experiment=experiment, acting_user=reviewer)
    backdated_runs(experiment.case_id, version=2, runs=10, successes=5, age=timedelta(minutes=5))
    experiment_evaluate(experiment=Experiment.objects.get(pk=experiment.pk))

    client.force_login(reviewer)
    page = client.get(f"{LIST}{experiment.pk}/change/").content.decode()
    svg = re.search(r"<svg[^>]*experiment-chart.*?</svg>", page, re.S).group(0)
    assert svg.count("<circle") == 3 and svg.count('class="ramp-step"') == 1 and "→ 50%" in svg
