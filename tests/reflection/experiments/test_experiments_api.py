"""`/api/experiments/`: read experiments (the `reflection` scope and the permission to view them
in admin) and decide them (the `review` scope and `reflection.approve_suggestion`, as admin asks),
with strict input: unknown fields, wrong types and non-finite numbers are 400s, unknown ids 404s."""
from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from reflection.experiments.services import experiment_evaluate
from reflection.models import Experiment, ExperimentStatus
from tests.reflection.experiments.support import approved_experiment, keys, send_runs

pytestmark = pytest.mark.django_db
BASE = "/api/experiments/"


@pytest.fixture
def experiment(make_case, reviewer, settings, api) -> Experiment:
    settings.EXPERIMENT_RAMP = (0.2, 0.5)
    made = approved_experiment(make_case, reviewer)
    send_runs(api, made, keys=keys(300), current_rate=0.5, candidate_rate=0.5)
    return experiment_evaluate(experiment=made)


@pytest.fixture
def reviewer_api(api_client, reviewer):
    return api_client(scopes=["reflection", "review"], user=reviewer)


@pytest.fixture
def onlooker_api(api_client):
    return api_client(scopes=["reflection", "review"], permissions=["view_experiment"])


def test_the_list_shows_arms_share_and_statistic_and_filters(reviewer_api, experiment, make_case, reviewer):
    other = approved_experiment(make_case, reviewer, title="Another case")
    listed = reviewer_api.get(BASE).json()
    assert listed["count"] == 2 and [row["id"] for row in listed["results"]] == [other.pk, experiment.pk]
    row = listed["results"][1]
    assert (row["status"], row["share"], row["base_version"], row["candidate_version"]) == ("running", 0.2, 1, 2)
    assert [arm["arm"] for arm in row["arms"]] == ["current", "candidate"]
    assert row["statistic"]["outcome"] == "continue"

    by_case = reviewer_api.get(BASE, {"case": str(other.case_id)}).json()
    assert [r["id"] for r in by_case["results"]] == [other.pk]
    assert reviewer_api.get(BASE, {"status": "rolled_back"}).json()["count"] == 0


@pytest.mark.parametrize("query", [{"status": "nope"}, {"case": "not-a-uuid"}, {"page_size": "x"}])
def test_bad_filters_are_400_or_ignored_never_500(reviewer_api, experiment, query):
    response = reviewer_api.get(BASE, query)
    assert response.status_code in (200, 400)
    if "page_size" not in query:
        assert response.status_code == 400 and set(response.json()["errors"]) == set(query)


def test_the_detail_has_arms_intervals_ramp_statistic_looks_and_decision(reviewer_api, experiment):
    body = reviewer_api.get(f"{BASE}{experiment.pk}/").json()
    current, candidate = body["arms"]
    assert candidate["runs"] == experiment.detail["candidate"]["runs"] and candidate["share"] == 0.2
    assert current["runs"] + candidate["runs"] == 300
    low, high = candidate["interval"]
    assert low < candidate["success_rate"] < high
    assert body["statistic"]["threshold"] == pytest.approx(20)
    assert set(body["statistic"]) == {"test", "outcome", "difference", "interval", "likelihood_ratio", "threshold",
                                      "p_value"}
    assert body["ramp"]["schedule"] == [0.2, 0.5] and body["ramp"]["next_share"] == 0.5
    assert body["ramp"]["step"] == 1 and body["ramp"]["steps"][0]["candidate"]["runs"] == candidate["runs"]
    assert len(body["looks"]) == 1 and body["looks"][0]["step"] == 1 and body["looks"][0]["share"] == 0.2
    assert (body["decided_at"], body["decided_by"]) == (None, "")


@pytest.mark.parametrize("path", ["999999/", "9223372036854775808/", "99999999999999999999999/",
                                  "999999/promote", "99999999999999999999999/share"])
def test_an_unknown_experiment_is_404(reviewer_api, path):
    method = reviewer_api.post if not path.endswith("/") else reviewer_api.get
    body = {"share": 0.3} if path.endswith("share") else {}
    assert method(f"{BASE}{path}", body, format="json").status_code == 404


@pytest.mark.parametrize("scopes", [["cases:read", "review"], ["logs:write", "sessions"]])
def test_reading_needs_the_reflection_scope(api_client, reviewer, experiment, scopes):
    client = api_client(scopes=scopes, user=reviewer)
    for path in (BASE, f"{BASE}{experiment.pk}/"):
        response = client.get(path)
        assert response.status_code == 403 and "'reflection'" in response.json()["detail"]


def test_reading_needs_the_permission_admin_asks(api_client, experiment):
    client = api_client(scopes=["reflection"])
    assert client.get(f"{BASE}{experiment.pk}/").status_code == 403
    assert api_client(scopes=["reflection"], permissions=["view_experiment"]).get(f"{BASE}{experiment.pk}/").status_code == 200


def test_changes_need_the_review_scope_and_the_approve_permission(api_client, reviewer, onlooker_api, experiment):
    no_scope = api_client(scopes=["reflection"], user=reviewer)
    response = no_scope.post(f"{BASE}{experiment.pk}/share", {"share": 0.3}, format="json")
    assert response.status_code == 403 and "'review'" in response.json()["detail"]
    for path, body in (("share", {"share": 0.3}), ("rollback", {"note": "x"}), ("promote", {}),
                       ("ramp", {"action": "advance"})):
        response = onlooker_api.post(f"{BASE}{experiment.pk}/{path}", body, format="json")
        assert response.status_code == 403 and "reflection.approve_suggestion" in response.json()["detail"]
    assert Experiment.objects.get(pk=experiment.pk).candidate_share == 0.2


def test_rollback_needs_a_note_then_is_recorded(reviewer_api, reviewer, experiment):
    for body in ({}, {"note": ""}, {"note": "   "}, {"note": 12}, {"note": None}, {"note": ["x"]}, {"note": "x" * 2001}):
        assert reviewer_api.post(f"{BASE}{experiment.pk}/rollback", body, format="json").status_code == 400, body

    response = reviewer_api.post(f"{BASE}{experiment.pk}/rollback", {"note": "tickets doubled"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["decided_by"], body["decision_note"]) == ("rolled_back", "reviewer", "tickets doubled")
    assert body["decided_at"] is not None
    entry = LogEntry.objects.get(object_id=str(experiment.pk), user=reviewer)
    assert "through the API" in entry.change_message and "tickets doubled" in entry.change_message
    again = reviewer_api.post(f"{BASE}{experiment.pk}/rollback", {"note": "again"}, format="json")
    assert again.status_code == 409


def test_promote_is_409_while_running_and_overrides_a_rollback(reviewer_api, experiment):
    assert reviewer_api.post(f"{BASE}{experiment.pk}/promote", {}, format="json").status_code == 409
    reviewer_api.post(f"{BASE}{experiment.pk}/rollback", {"note": "too early"}, format="json")
    response = reviewer_api.post(f"{BASE}{experiment.pk}/promote", {"note": "override"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "promoted"


@pytest.mark.parametrize("body", [
    {"share": "0.5"}, {"share": True}, {"share": None}, {"share": 0}, {"share": 1}, {"share": 1.5}, {"share": -0.1},
    {"share": [0.5]}, {"share": {"value": 0.5}}, {}, {"share": 0.5, "shares": 0.5}, {"share": 0.5, "note": 3},
])
def test_a_bad_share_is_400_and_changes_nothing(reviewer_api, experiment, body):
    response = reviewer_api.post(f"{BASE}{experiment.pk}/share", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"]
    assert Experiment.objects.get(pk=experiment.pk).candidate_share == 0.2


@pytest.mark.parametrize("raw", [b'{"share": NaN}', b'{"share": Infinity}', b'{"share": 1e400}', b'[0.5]', b'0.5',
                                 b'"x"', b'{"share": 0.5', b'{"share": 123456789012345678901234567890}'])
def test_non_finite_numbers_and_bodies_that_are_not_an_object_are_400(reviewer_api, experiment, raw):
    response = reviewer_api.generic("POST", f"{BASE}{experiment.pk}/share", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert Experiment.objects.get(pk=experiment.pk).candidate_share == 0.2


def test_a_huge_body_is_413(reviewer_api, experiment):
    response = reviewer_api.post(f"{BASE}{experiment.pk}/rollback", {"note": "x" * 3_000_000}, format="json")
    assert response.status_code == 413


def test_share_sets_a_step_and_holds_the_ramp(reviewer_api, experiment):
    response = reviewer_api.post(f"{BASE}{experiment.pk}/share", {"share": 0.35, "note": "more traffic"}, format="json")
    assert response.status_code == 200
    ramp = response.json()["ramp"]
    assert response.json()["share"] == 0.35 and ramp["held"] is True and ramp["step"] == 2
    assert ramp["steps"][1]["reason"] == "more traffic" and ramp["steps"][1]["started_by"] == "reviewer"


def test_the_ramp_advances_holds_and_resumes(reviewer_api, experiment):
    path = f"{BASE}{experiment.pk}/ramp"
    assert reviewer_api.post(path, {"action": "hold"}, format="json").json()["ramp"]["held"] is True
    assert reviewer_api.post(path, {"action": "resume"}, format="json").json()["ramp"]["held"] is False
    advanced = reviewer_api.post(path, {"action": "advance"}, format="json").json()
    assert advanced["share"] == 0.5 and advanced["ramp"]["next_share"] is None
    assert reviewer_api.post(path, {"action": "advance"}, format="json").status_code == 409
    for body in ({"action": "jump"}, {"action": 1}, {}, {"action": "hold", "extra": 1}):
        assert reviewer_api.post(path, body, format="json").status_code == 400


def test_changes_to_a_decided_experiment_are_409(reviewer_api, experiment):
    reviewer_api.post(f"{BASE}{experiment.pk}/rollback", {"note": "stop"}, format="json")
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.ROLLED_BACK
    assert reviewer_api.post(f"{BASE}{experiment.pk}/share", {"share": 0.3}, format="json").status_code == 409
    assert reviewer_api.post(f"{BASE}{experiment.pk}/ramp", {"action": "hold"}, format="json").status_code == 409


@pytest.mark.parametrize("query", [{"page": "99999999999999999999"}, {"page": "-1"}, {"page_size": "100000"},
                                   {"case": "x" * 5000}, {"status": "running\x00"}, {"case": "\x00"}])
def test_hostile_queries_are_4xx_or_clamped(reviewer_api, experiment, query):
    response = reviewer_api.get(BASE, query)
    assert response.status_code in (200, 400, 404), response.content
    assert "detail" in response.json() or "results" in response.json()


def test_other_methods_are_405_and_anonymous_callers_401(reviewer_api, anonymous_api, experiment):
    assert reviewer_api.put(f"{BASE}{experiment.pk}/", {}, format="json").status_code == 405
    assert reviewer_api.delete(f"{BASE}{experiment.pk}/").status_code == 405
    assert reviewer_api.get(f"{BASE}{experiment.pk}/promote").status_code == 405
    assert anonymous_api.get(BASE).status_code == 401
    assert anonymous_api.post(f"{BASE}{experiment.pk}/rollback", {"note": "x"}, format="json").status_code == 401
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.RUNNING
