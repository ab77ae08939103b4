"""The supervisor plans from the version of the case its session's arm runs (issue #15): with an
experiment on the case, `resolve_plan(key=session id)` picks the plan, and the session and its
execution log carry that version."""
from __future__ import annotations

import pytest

from casebank.models import Case
from reflection.experiments.selectors import resolve_plan
from reflection.experiments.services import experiment_set_share
from reflection.models import ExecutionLog, Experiment
from reflection.suggestions.services import suggestion_approve
from tests.reflection.suggestion_helpers import make_suggestion

pytestmark = pytest.mark.django_db(transaction=True)

PLAN = [{"agent": "information_retrieval", "action": "Find the refund policy"}, {"agent": "supervisor", "action": "Answer"}]
CANDIDATE = [{"agent": "information_retrieval", "action": "Find the refund policy and its exceptions"},
             {"agent": "supervisor", "action": "Answer, citing the policy"}]


def test_a_session_runs_and_logs_the_candidate_of_its_arm(api, make_case, knowledge, no_llm, reviewer):
    case = make_case(title="Refund policy answer", query="What is our refund policy for annual subscriptions?",
                     plan=PLAN, category="support/policies")
    suggestion = suggestion_approve(suggestion=make_suggestion(case, revised_plan=CANDIDATE), acting_user=reviewer)
    # Nearly every key on the candidate: the session almost surely runs it; checked below either way.
    experiment_set_share(experiment=Experiment.objects.get(suggestion=suggestion), share=0.9999)

    response = api.post("/api/sessions/", {"query": "What is our refund policy for annual subscriptions?"}, format="json")
    assert response.status_code == 202, response.content
    session_id = response.json()["session_id"]
    state = api.get(f"/api/sessions/{session_id}").json()

    served = resolve_plan(case=Case.objects.get(pk=case.pk), key=session_id)
    assert state["status"] == "completed", state
    assert (state["plan_source"], state["case_id"]) == ("case", str(case.pk))
    assert (state["case_version"], state["plan"]) == (served.version, served.plan)
    assert served.arm == "candidate" and served.version == 2 and served.plan == CANDIDATE
    assert ExecutionLog.objects.get(session_id=session_id).case_version == 2
    assert Case.objects.get(pk=case.pk).version == 1
