"""The case form's plan editor: steps as rows (agent from the known agents, action, params),
reordered and removed, checked by the validator the API uses; the JSON view stays available."""
from __future__ import annotations

import pytest
from django.urls import reverse

from casebank.models import Case
from tests.casebank.cases.test_case_admin import INLINES

pytestmark = pytest.mark.django_db

PLAN = [{"agent": "data_analysis", "action": "Sum revenue", "sql": "SELECT 1"},
        {"agent": "supervisor", "action": "Answer"}]


def _post(client, case, **rows):
    data = {"title": case.title, "query": case.query, "category": case.category, "tags": "[]",
            "plan": "", "plan_mode": "rows", **INLINES}
    data.update(rows)
    return client.post(reverse("admin:casebank_case_change", args=[case.pk]), data)


def test_it_shows_the_plan_as_rows_with_known_agents_and_the_json_view(admin_client_logged_in, make_case):
    case = make_case(plan=PLAN)
    page = admin_client_logged_in.get(reverse("admin:casebank_case_change", args=[case.pk])).content.decode()
    assert '<input type="radio" name="plan_mode" value="rows" checked>' in page
    for agent in ("data_analysis", "information_retrieval", "supervisor"):
        assert f'<option value="{agent}"' in page
    assert '<option value="data_analysis" selected>' in page
    assert 'value="Sum revenue"' in page and 'value="{&quot;sql&quot;: &quot;SELECT 1&quot;}"' in page
    assert '<textarea name="plan" id="id_plan"' in page and "&quot;agent&quot;: &quot;supervisor&quot;" in page
    assert "cdn" not in page.lower() and "<script src=" not in page.split('class="plan-editor"')[1]


def test_editing_rows_saves_a_reordered_valid_plan_as_a_new_version(admin_client_logged_in, make_case):
    case = make_case(plan=PLAN)
    response = _post(
        admin_client_logged_in, case,
        plan_agent=["data_analysis", "supervisor", "information_retrieval", ""],
        plan_action=["Sum revenue", "Answer", "Find the policy", ""],
        plan_params=['{"sql": "SELECT 2"}', "", "", ""],
        plan_order=["2", "3", "1", "4"],
        plan_remove=[],
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert case.version == 2
    assert case.plan == [{"agent": "information_retrieval", "action": "Find the policy"},
                         {"sql": "SELECT 2", "agent": "data_analysis", "action": "Sum revenue"},
                         {"agent": "supervisor", "action": "Answer"}]
    # Removing a row drops that step.
    response = _post(admin_client_logged_in, case, plan_agent=["information_retrieval", "supervisor"],
                     plan_action=["Find", "Answer"], plan_params=["", ""], plan_order=["1", "2"], plan_remove=["0"])
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.plan == [{"agent": "supervisor", "action": "Answer"}]


@pytest.mark.parametrize(("rows", "message"), [
    ({"plan_agent": ["", ""], "plan_action": ["Nobody does this", ""], "plan_params": ["", ""]},
     "Step 1 must name its agent"),  # the API's validator (services.validate_plan)
    ({"plan_agent": ["data_analysis"], "plan_action": ["x"], "plan_params": ["{not json"]},
     "Row 1: params must be a JSON object"),
    ({"plan_agent": ["data_analysis"], "plan_action": ["x"], "plan_params": ["[1, 2]"]},
     "Row 1: params must be a JSON object"),
    ({"plan_agent": ["data_analysis"], "plan_action": ["x"], "plan_params": ['{"sql": "a\\u0000b"}']},
     "NUL"),
    ({"plan_agent": ["data_analysis"], "plan_action": ["x"], "plan_params": [""], "plan_order": ["soon"]},
     "Row 1: the order must be a number"),
    ({"plan_agent": [""], "plan_action": [""], "plan_params": [""]}, "Add at least one step"),
])
def test_it_refuses_an_invalid_plan_with_a_message_and_keeps_the_rows(admin_client_logged_in, make_case, rows, message):
    case = make_case(plan=PLAN)
    response = _post(admin_client_logged_in, case, **rows)
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert "errornote" in page
    # What was typed comes back, not the stored plan.
    if rows["plan_action"][0]:
        assert f'value="{rows["plan_action"][0]}"' in page
    case.refresh_from_db()
    assert case.version == 1 and case.plan == PLAN


def test_the_json_view_still_saves_text_and_refuses_bad_json(admin_client_logged_in, make_case):
    case = make_case(plan=PLAN)
    bad = _post(admin_client_logged_in, case, plan_mode="json", plan="[{")
    assert bad.status_code == 200 and "Not valid JSON" in bad.content.decode()
    good = _post(admin_client_logged_in, case, plan_mode="json", plan='"Call the team lead"')
    assert good.status_code == 302
    case.refresh_from_db()
    assert case.plan == "Call the team lead"
    # A text plan opens in the JSON view (rows cannot hold it).
    page = admin_client_logged_in.get(reverse("admin:casebank_case_change", args=[case.pk])).content.decode()
    assert '<input type="radio" name="plan_mode" value="json" checked>' in page


def test_huge_row_counts_are_refused_by_the_same_limit_as_the_api(admin_client_logged_in, make_case):
    case = make_case(plan=PLAN)
    n = 101
    response = _post(admin_client_logged_in, case, plan_agent=["supervisor"] * n, plan_action=["a"] * n,
                     plan_params=[""] * n, plan_order=[str(i) for i in range(n)])
    assert response.status_code == 200 and "at most 100 steps" in response.content.decode()
    assert Case.objects.get(pk=case.pk).version == 1
