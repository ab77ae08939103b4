"""A log sent without `case_version` for a case under experiment is attributed to its arm
(issue #15), computed again from its key, not to the current version."""
from __future__ import annotations

import pytest

from casebank.models import Case
from reflection.experiments.selectors import resolve_plan
from reflection.models import ExecutionLog
from tests.reflection.experiments.support import approved_experiment, keys, send_runs

pytestmark = pytest.mark.django_db


def test_a_log_without_case_version_counts_for_its_sessions_arm(make_case, reviewer, api):
    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    sessions = keys(400)

    send_runs(api, experiment, keys=sessions, current_rate=0.5, candidate_rate=0.5, with_version=False)

    stored = dict(ExecutionLog.objects.filter(case=case).values_list("session_id", "case_version"))
    expected = {key: resolve_plan(case=case, key=key).version for key in sessions}
    assert {str(session): version for session, version in stored.items()} == expected
    assert set(expected.values()) == {1, 2}


def test_an_assignment_key_in_the_context_wins_over_the_session(make_case, reviewer, api):
    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    candidate_key = next(key for key in keys(100, "conversation") if resolve_plan(case=case, key=key).arm == "candidate")

    response = api.post("/api/logs/", {"case_id": str(case.pk), "success": True, "execution_time_ms": 10,
                                       "context": {"assignment_key": candidate_key}}, format="json")

    assert response.status_code == 201, response.content
    assert ExecutionLog.objects.get(case=case).case_version == experiment.candidate_version


def test_a_log_with_no_key_at_all_gets_the_current_version(make_case, reviewer, api):
    experiment = approved_experiment(make_case, reviewer)

    response = api.post("/api/logs/", {"case_id": str(experiment.case_id), "success": True, "execution_time_ms": 10},
                        format="json")

    assert response.status_code == 201, response.content
    assert ExecutionLog.objects.get(case_id=experiment.case_id).case_version == 1


def test_the_candidate_version_is_accepted_and_versions_past_it_are_refused(make_case, reviewer, api):
    experiment = approved_experiment(make_case, reviewer)
    log = {"case_id": str(experiment.case_id), "success": True, "execution_time_ms": 10}

    assert api.post("/api/logs/", {**log, "case_version": 2}, format="json").status_code == 201
    refused = api.post("/api/logs/", {**log, "case_version": 3}, format="json")

    assert refused.status_code == 400
    assert "case_version" in refused.json()["errors"]["0"]


def test_a_batch_of_current_version_logs_costs_no_experiment_query(make_case, reviewer, api,
                                                                  django_assert_max_num_queries):
    case = make_case()
    batch = [{"case_id": str(case.pk), "case_version": 1, "success": True, "execution_time_ms": 10}] * 50
    response = api.post("/api/logs/", batch, format="json")
    assert response.status_code == 201
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        api.post("/api/logs/", batch, format="json")
    assert not any("experiment" in query["sql"] for query in queries.captured_queries)


def test_attributing_a_keyless_batch_costs_one_query_not_one_per_log(make_case, reviewer, api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    experiment = approved_experiment(make_case, reviewer)
    batch = [{"case_id": str(experiment.case_id), "session_id": key, "success": True, "execution_time_ms": 10}
             for key in keys(500)]
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/api/logs/", batch, format="json").status_code == 201
    assert sum("reflection_experiment" in query["sql"] for query in queries.captured_queries) == 1
    assert set(ExecutionLog.objects.values_list("case_version", flat=True)) == {1, 2}
