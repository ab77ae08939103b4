"""Suggestions read the current version's runs and never repeat a change (issue #15: right after
v2 was approved, `reflect --case … --suggest` proposed v2's own timeout-and-retries change again,
from v1 and v2 runs mixed, "164 of 405 runs")."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from casebank.cases import services as case_services
from casebank.models import Case
from reflection.analysis.services import reflection_run_here
from reflection.models import CaseReflectionState, Experiment, ExperimentStatus, Suggestion, SuggestionStatus
from reflection.suggestions.generation import suggestion_generate, suggestion_generate_explained
from reflection.suggestions.services import suggestion_approve, suggestion_reject
from tests.reflection.experiments.support import keys, send_runs
from tests.reflection.suggestion_helpers import PLAN, add_logs
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db


def _reflect_suggest(case_id) -> str:
    out = StringIO()
    call_command("reflect", "--case", str(case_id), "--suggest", stdout=out)
    return out.getvalue()


def _v1_with_timeouts(make_case) -> Case:
    case = make_case(plan=PLAN)
    add_logs(case, successes=25, failures=100)  # timeouts: the rules add timeouts and retries
    return case


def _approve_first_suggestion(case: Case, reviewer) -> Suggestion:
    first = suggestion_generate(case_id=case.pk)
    assert first is not None and first.source == "rules"
    return suggestion_approve(suggestion=first, acting_user=reviewer)


# --- experiments off: approval applies v2 at once ------------------------------------------


def test_evidence_comes_from_the_current_versions_runs_only(make_case, reviewer, settings, experiments_off,
                                                           admin_client_logged_in):
    settings.OPENAI_API_KEY = ""
    case = _v1_with_timeouts(make_case)
    _approve_first_suggestion(case, reviewer)
    case = Case.objects.get(pk=case.pk)
    # The counts: 164 of 405 runs pooled; v2 alone, 139 of 280, fails on the schema now.
    add_logs(case, successes=139, failures=141, version=2, error_type="SchemaError",
             message="column region_id does not exist")

    out = _reflect_suggest(case.pk)

    suggestion = Suggestion.objects.get(status=SuggestionStatus.PENDING)
    assert f"suggestion #{suggestion.pk} (rules) is pending review" in out
    assert "139 of 280 runs of v2 succeeded" in suggestion.rationale
    evidence = suggestion.evidence
    assert (evidence["analysis"]["case_version"], evidence["analysis"]["total_executions"]) == (2, 280)
    assert [e["error_type"] for e in evidence["common_errors"]] == ["SchemaError"]
    assert {e["case_version"] for e in evidence["failing_examples"]} == {2}
    assert [(v["version"], v["runs"]) for v in evidence["analysis"]["versions"]] == [(2, 280), (1, 125)]
    page = admin_client_logged_in.get(reverse("admin:reflection_suggestion_change", args=[suggestion.pk]))
    assert "139 of 280 runs of v2 succeeded" in page.content.decode()


def test_a_change_the_plan_already_has_is_not_listed_again(make_case, reviewer, settings, experiments_off):
    """v2 has timeouts and retries and is slow now: the rules propose caching, not timeouts again."""
    settings.OPENAI_API_KEY = ""
    case = _v1_with_timeouts(make_case)
    _approve_first_suggestion(case, reviewer)
    add_logs(Case.objects.get(pk=case.pk), successes=20, failures=100, version=2, latency_ms=2_500)

    suggestion, reason = suggestion_generate_explained(case_id=case.pk)

    assert suggestion is not None, reason
    assert [c["what"] for c in suggestion.changes] == ["Cache intermediate results and bound each step's latency."]


def test_a_refused_proposal_leaves_its_reason_where_people_look(make_case, reviewer, settings, experiments_off,
                                                                  admin_client_logged_in, api):
    settings.OPENAI_API_KEY = ""
    case = _v1_with_timeouts(make_case)
    _approve_first_suggestion(case, reviewer)
    add_logs(Case.objects.get(pk=case.pk), successes=10, failures=110, version=2)  # v2 still times out

    reflection_run_here(requested_by="test")  # a batch run: nobody reads a command's output

    state = CaseReflectionState.objects.get(case_id=case.pk)
    assert state.suggestion_refused.startswith("The proposed change is already in version 2.")
    assert state.suggestion_refused_at is not None
    assert not Suggestion.objects.filter(status=SuggestionStatus.PENDING).exists()
    page = admin_client_logged_in.get(f"/admin/reflection/caseanalysis/case/{case.pk}/").content.decode()
    assert "No suggestion made" in page and "already in version 2" in page
    body = api.get(f"/api/reflection/cases/{case.pk}/analysis").json()
    assert body["suggestion_refused"]["reason"].startswith("The proposed change is already in version 2.")


def test_a_plan_applied_and_then_rolled_back_is_not_proposed_again(make_case, reviewer, settings, experiments_off):
    settings.OPENAI_API_KEY = ""
    case = _v1_with_timeouts(make_case)
    _approve_first_suggestion(case, reviewer)
    case = case_services.case_rollback(case=Case.objects.get(pk=case.pk), to_version=1, actor="editor")
    assert case.version == 3 and case.plan == PLAN
    add_logs(case, successes=20, failures=100, version=3)  # v1's plan times out again as v3

    out = _reflect_suggest(case.pk)

    assert "no suggestion: The same change was applied as version 2 and rolled back (version 3)." in out
    assert not Suggestion.objects.filter(status=SuggestionStatus.PENDING).exists()


# --- the LLM path is checked the same way ---------------------------------------------------


def _answer(revised_plan) -> dict:
    return {"rationale": "Timeouts dominate.", "changes": [{"what": "Add timeouts", "why": "timeouts"}],
            "revised_plan": revised_plan, "expected_effect": "Fewer timeouts.", "confidence": 0.6}


def test_the_llm_proposing_what_the_plan_already_has_is_refused(make_case, reviewer, settings, experiments_off,
                                                                llm_settings, openai_server):
    case = _v1_with_timeouts(make_case)
    openai_server.reply(Reply.json(_answer([{**PLAN[0], "timeout_s": 30, "retry": {"attempts": 3}}, PLAN[1]])))
    suggestion_approve(suggestion=suggestion_generate(case_id=case.pk), acting_user=reviewer)
    add_logs(Case.objects.get(pk=case.pk), successes=10, failures=110, version=2)
    # The same timeout again, without the retries v2 also has: nothing v2 lacks.
    openai_server.reply(Reply.json(_answer([{**PLAN[0], "timeout_s": 30}, PLAN[1]])))

    suggestion, reason = suggestion_generate_explained(case_id=case.pk)

    assert suggestion is None
    assert reason.startswith("The proposed plan adds nothing to version 2")
    assert CaseReflectionState.objects.get(case_id=case.pk).suggestion_refused == reason


def test_the_llm_proposing_a_rejected_plan_again_is_refused(make_case, reviewer, llm_settings, openai_server):
    case = _v1_with_timeouts(make_case)
    rejected_plan = [{**PLAN[0], "timeout_s": 30}, PLAN[1]]
    openai_server.reply(Reply.json(_answer(rejected_plan)))
    first = suggestion_generate(case_id=case.pk)
    suggestion_reject(suggestion=first, acting_user=reviewer, note="hides the slow query")
    # The same plan written with its keys in another order.
    openai_server.reply(Reply.json(_answer([{"timeout_s": 30, **PLAN[0]}, PLAN[1]])))

    suggestion, reason = suggestion_generate_explained(case_id=case.pk)

    assert suggestion is None and reason == f"The same change was rejected in suggestion #{first.pk}."


# --- experiments on: the experiment decides first -------------------------------------------


def test_no_suggestion_while_the_experiment_runs_then_evidence_from_the_promoted_version(make_case, reviewer, settings,
                                                                                        api):
    settings.OPENAI_API_KEY = ""
    case = _v1_with_timeouts(make_case)
    approved = _approve_first_suggestion(case, reviewer)
    experiment = Experiment.objects.get(suggestion=approved)
    case = Case.objects.get(pk=case.pk)
    assert (case.version, experiment.candidate_version) == (1, 2)

    out = _reflect_suggest(case.pk)  # v1 is weak, but v2 is being tried on a canary

    assert f"no suggestion: Experiment #{experiment.pk} is testing a change to this case; it decides first." in out
    assert not Suggestion.objects.filter(status=SuggestionStatus.PENDING).exists()

    seen = send_runs(api, experiment, keys=keys(2_000), current_rate=0.2, candidate_rate=0.6)
    _reflect_suggest(case.pk)  # the experiment promotes v2; v2 is at 60 %: no suggestion
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.PROMOTED
    case = Case.objects.get(pk=case.pk)
    assert case.version == 2
    candidate_ok = int(seen["candidate"] * 0.6)
    add_logs(case, successes=0, failures=seen["candidate"], version=2, error_type="SchemaError",
             message="column region_id does not exist")

    out = _reflect_suggest(case.pk)

    suggestion = Suggestion.objects.get(status=SuggestionStatus.PENDING)
    assert f"{candidate_ok} of {2 * seen['candidate']} runs of v2 succeeded" in suggestion.rationale
    assert suggestion.evidence["analysis"]["total_executions"] == 2 * seen["candidate"]
    assert {e["case_version"] for e in suggestion.evidence["failing_examples"]} == {2}


def test_no_suggestion_while_a_better_candidate_awaits_its_reviewer(make_case, reviewer, settings, api):
    settings.OPENAI_API_KEY = ""
    settings.EXPERIMENT_AUTO_PROMOTE = False
    case = _v1_with_timeouts(make_case)
    experiment = Experiment.objects.get(suggestion=_approve_first_suggestion(case, reviewer))
    send_runs(api, experiment, keys=keys(2_000), current_rate=0.2, candidate_rate=0.6)

    out = _reflect_suggest(case.pk)

    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.AWAITING_REVIEW
    assert (f"no suggestion: Experiment #{experiment.pk} found its candidate better; a reviewer decides on it "
            "first.") in out
