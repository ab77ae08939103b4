"""An early run starts for a case once 100 new logs have arrived for it."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from reflection.models import CaseAnalysis, ReflectionRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def _batch(case, n):
    return [{"case_id": str(case.pk), "success": True, "execution_time_ms": 50} for _ in range(n)]


def test_it_starts_an_early_run_at_one_hundred_new_logs(api, make_case, django_capture_on_commit_callbacks):
    case, other = make_case(title="busy"), make_case(title="quiet")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/logs/", _batch(case, 60) + _batch(other, 5), format="json").status_code == 201
    assert not ReflectionRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/logs/", _batch(case, 40), format="json").status_code == 201

    run = ReflectionRun.objects.get()
    assert (run.trigger, run.case_ids, run.status) == ("early", [str(case.pk)], "completed")
    assert list(CaseAnalysis.objects.filter(run=run).values_list("case_id", "total_executions")) == [(case.pk, 100)]


def test_it_restarts_the_count_after_a_trigger(api, make_case, django_capture_on_commit_callbacks):
    case = make_case()
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/logs/", _batch(case, 100), format="json")
        api.post("/api/logs/", _batch(case, 99), format="json")
    assert ReflectionRun.objects.count() == 1


def test_it_does_not_count_re_sent_logs(api, make_case, django_capture_on_commit_callbacks):
    case = make_case()
    batch = _batch(case, 60)
    for record in batch:
        record["id"] = str(__import__("uuid").uuid4())
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/logs/", batch, format="json")
        api.post("/api/logs/", batch, format="json")
    assert not ReflectionRun.objects.exists()
