"""Every reflection path looks at running experiments and acts (issue #15): a batch run,
`reflect --case`, `POST /api/reflection/analyze` and the early trigger after 100 new logs."""
from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.management import call_command

from reflection.analysis.services import reflection_run_here
from reflection.models import Experiment, ExperimentStatus
from tests.reflection.experiments.support import approved_experiment, keys, send_runs

pytestmark = pytest.mark.django_db


@pytest.fixture
def regressing(make_case, reviewer, api) -> Experiment:
    cache.clear()  # the early-trigger counters
    experiment = approved_experiment(make_case, reviewer)
    send_runs(api, experiment, keys=keys(2_000), current_rate=0.6, candidate_rate=0.3)
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.RUNNING
    return experiment


def _status(experiment: Experiment) -> str:
    return Experiment.objects.get(pk=experiment.pk).status


def test_a_batch_run_decides(regressing):
    reflection_run_here(requested_by="test")
    assert _status(regressing) == ExperimentStatus.ROLLED_BACK


def test_reflect_case_decides(regressing):
    call_command("reflect", "--case", str(regressing.case_id))
    assert _status(regressing) == ExperimentStatus.ROLLED_BACK


def test_the_analyze_api_decides(regressing, api):
    response = api.post("/api/reflection/analyze", {"case_id": str(regressing.case_id)}, format="json")
    assert response.status_code == 200, response.content
    assert _status(regressing) == ExperimentStatus.ROLLED_BACK


def test_the_early_trigger_decides(make_case, reviewer, api, django_capture_on_commit_callbacks):
    cache.clear()
    experiment = approved_experiment(make_case, reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        send_runs(api, experiment, keys=keys(2_000), current_rate=0.6, candidate_rate=0.3)
    assert _status(experiment) == ExperimentStatus.ROLLED_BACK
    cache.clear()
