"""`GET /api/cases/{id}/plan/` and case search hand each caller the version of its arm; bad
keys, unknown or unreviewed cases and missing keys get clear JSON 4xx."""
from __future__ import annotations

import uuid

import pytest

from casebank.cases import services as case_services
from casebank.models import Case, ReviewState
from reflection.experiments.selectors import resolve_plan
from tests.reflection.experiments.support import approved_experiment, keys
from tests.reflection.suggestion_helpers import PLAN, REVISED

pytestmark = pytest.mark.django_db


def _plan(api, case_id, **params):
    return api.get(f"/api/cases/{case_id}/plan/", params)


def test_it_returns_the_version_plan_and_arm_of_a_key(api, make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    by_arm = {}
    for key in keys(200):
        by_arm.setdefault(resolve_plan(case=case, key=key).arm, key)

    candidate = _plan(api, case.pk, key=by_arm["candidate"]).json()
    current = _plan(api, case.pk, key=by_arm["current"]).json()

    assert candidate == {"case_id": str(case.pk), "version": 2, "plan": REVISED, "arm": "candidate",
                         "experiment_id": experiment.pk, "current_version": 1}
    assert (current["version"], current["plan"], current["arm"]) == (1, PLAN, "current")


def test_without_an_experiment_everyone_gets_the_current_version(api, make_case):
    case = make_case(plan=PLAN)
    body = _plan(api, case.pk, key="k").json()
    assert (body["version"], body["plan"], body["arm"], body["experiment_id"]) == (1, PLAN, None, None)


def test_the_header_or_else_the_api_key_picks_the_arm(api, make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    key = next(k for k in keys(200) if resolve_plan(case=case, key=k).arm == "candidate")

    by_header = api.get(f"/api/cases/{case.pk}/plan/", HTTP_X_CASELOOP_ASSIGNMENT_KEY=key).json()
    by_api_key = [_plan(api, case.pk).json()["arm"] for _ in range(3)]

    assert by_header["arm"] == "candidate"
    assert len(set(by_api_key)) == 1  # one client, one arm


def test_it_needs_an_api_key(anonymous_api, make_case):
    case = make_case()
    response = _plan(anonymous_api, case.pk, key="k")
    assert response.status_code in (401, 403)
    assert "detail" in response.json()


@pytest.mark.parametrize("key", ["", "   ", "x" * 201, "tab\there", "nul\x00"])
def test_bad_keys_are_a_json_400(api, make_case, key):
    case = make_case()
    response = _plan(api, case.pk, key=key)
    assert response.status_code == 400, response.content
    assert "key" in response.json()["errors"]


def test_a_bad_header_key_is_a_json_400_in_plan_and_search(api, make_case):
    case = make_case()
    long_key = "y" * 500
    plan = api.get(f"/api/cases/{case.pk}/plan/", HTTP_X_CASELOOP_ASSIGNMENT_KEY=long_key)
    search = api.post("/api/cases/search/", {"query": "revenue"}, format="json", HTTP_X_CASELOOP_ASSIGNMENT_KEY=long_key)
    assert plan.status_code == search.status_code == 400
    assert "X-Caseloop-Assignment-Key" in search.json()["errors"]


def test_an_unknown_or_unreviewed_case_is_404(api, make_case):
    pending = make_case(review_state=ReviewState.PENDING)
    assert _plan(api, uuid.uuid4(), key="k").status_code == 404
    response = _plan(api, pending.pk, key="k")
    assert response.status_code == 404 and response.json()["detail"] == "Case not found."
    assert api.get("/api/cases/not-a-uuid/plan/").status_code == 404


def test_search_results_carry_the_callers_version_and_arm(api, make_case, reviewer):
    experiment = approved_experiment(make_case, reviewer)
    case = Case.objects.get(pk=experiment.case_id)
    key = next(k for k in keys(200) if resolve_plan(case=case, key=k).arm == "candidate")
    other = next(k for k in keys(200) if resolve_plan(case=case, key=k).arm == "current")
    body = {"query": "monthly revenue region", "mode": "bm25"}

    [as_candidate] = api.post("/api/cases/search/", body, format="json", HTTP_X_CASELOOP_ASSIGNMENT_KEY=key).json()["results"]
    [as_current] = api.post("/api/cases/search/", body, format="json", HTTP_X_CASELOOP_ASSIGNMENT_KEY=other).json()["results"]

    assert (as_candidate["version"], as_candidate["plan"]) == (2, REVISED)
    assert as_candidate["experiment"] == {"id": experiment.pk, "arm": "candidate"}
    assert (as_current["version"], as_current["plan"], as_current["experiment"]["arm"]) == (1, PLAN, "current")


def test_search_without_an_experiment_has_no_arm(api, make_case):
    make_case(plan=PLAN)
    [hit] = api.post("/api/cases/search/", {"query": "monthly revenue region", "mode": "bm25"}, format="json").json()["results"]
    assert (hit["version"], hit["experiment"]) == (1, None)


def test_a_rolled_back_case_serves_everyone_the_current_plan_again(api, make_case, reviewer):
    from reflection.experiments.services import experiment_rollback

    experiment = approved_experiment(make_case, reviewer)
    experiment_rollback(experiment=experiment, acting_user=reviewer, note="not now")
    assert {_plan(api, experiment.case_id, key=k).json()["version"] for k in keys(30)} == {1}
    case_services.case_update(case=Case.objects.get(pk=experiment.case_id), actor="x", plan=REVISED[:1])
    assert _plan(api, experiment.case_id, key="k").json()["version"] == 3
