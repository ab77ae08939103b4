from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from casebank.access.services import hash_api_key
from casebank.models import ApiKey, Case, CaseStatusChange, CaseVersion
from tests.conftest import grant

pytestmark = pytest.mark.django_db

# The change form carries the (read-only) version, status and review inlines' management forms.
INLINES = {
    "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0",
    "status_changes-TOTAL_FORMS": "0", "status_changes-INITIAL_FORMS": "0",
    "review_changes-TOTAL_FORMS": "0", "review_changes-INITIAL_FORMS": "0",
}


def test_it_lists_cases_with_their_track_record(admin_client_logged_in, make_case):
    case = make_case(title="Revenue by region")
    Case.objects.filter(pk=case.pk).update(success_rate=0.425, usage_count=12)
    response = admin_client_logged_in.get(reverse("admin:casebank_case_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Revenue by region" in html and "42.5%" in html


def test_it_creates_a_case_through_the_service(admin_client_logged_in):
    response = admin_client_logged_in.post(
        reverse("admin:casebank_case_add"),
        {"title": "New case", "query": "Find things", "plan": '"Just do it"', "category": "ops", "tags": '["a"]', **INLINES},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    case = Case.objects.get(title="New case")
    assert case.embedding is not None
    assert case.updated_by == "root"
    assert CaseVersion.objects.filter(case=case, version=1).exists()


def test_it_shows_plan_errors_on_the_form(admin_client_logged_in):
    response = admin_client_logged_in.post(
        reverse("admin:casebank_case_add"),
        {"title": "Bad", "query": "q", "plan": '[{"action": "nobody"}]', "category": "", "tags": "[]", **INLINES},
    )
    assert response.status_code == 200
    assert "must name its agent" in response.content.decode()
    assert not Case.objects.exists()


def test_an_edit_in_admin_makes_a_new_version(admin_client_logged_in, make_case):
    case = make_case()
    response = admin_client_logged_in.post(
        reverse("admin:casebank_case_change", args=[case.pk]),
        {"title": case.title, "query": case.query, "plan": '"A new plan"', "category": case.category,
         "tags": '["sql"]', **INLINES},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.version, case.plan) == (2, "A new plan")


def test_status_actions_are_audited(admin_client_logged_in, make_case):
    first, second = make_case(title="One"), make_case(title="Two")
    response = admin_client_logged_in.post(
        reverse("admin:casebank_case_changelist"),
        {"action": "mark_deprecated", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    assert set(Case.objects.values_list("status", flat=True)) == {"deprecated"}
    assert CaseStatusChange.objects.filter(to_status="deprecated", actor="root").count() == 2
    assert LogEntry.objects.filter(change_message__contains="deprecated").count() == 2


def test_status_actions_need_change_permission(client, staff_user, make_case):
    case = make_case()
    grant(staff_user, "view_case")
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:casebank_case_changelist"), {"action": "mark_archived", "_selected_action": [case.pk]}
    )
    assert Case.objects.get(pk=case.pk).status == "active"
    assert response.status_code in (200, 302)


def test_rollback_asks_for_confirmation_then_makes_a_new_version(admin_client_logged_in, make_case):
    from casebank.cases import services

    case = make_case(plan="first")
    services.case_update(case=case, actor="t", plan="second")
    url = reverse("admin:casebank_case_rollback", args=[case.pk, 1])
    page = admin_client_logged_in.get(url)
    assert page.status_code == 200 and "Roll back" in page.content.decode()
    assert Case.objects.get(pk=case.pk).version == 2
    response = admin_client_logged_in.post(url)
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.version, case.plan) == (3, "first")
    assert CaseVersion.objects.get(case=case, version=3).reason == "rollback to v1"


def test_rollback_needs_the_rollback_permission(client, staff_user, make_case):
    from casebank.cases import services

    case = make_case(plan="first")
    services.case_update(case=case, actor="t", plan="second")
    grant(staff_user, "view_case", "change_case")
    client.force_login(staff_user)
    response = client.post(reverse("admin:casebank_case_rollback", args=[case.pk, 1]))
    assert response.status_code == 403
    assert Case.objects.get(pk=case.pk).version == 2


def test_adding_an_api_key_shows_it_once_and_stores_a_hash(admin_client_logged_in):
    response = admin_client_logged_in.post(
        reverse("admin:casebank_apikey_add"), {"name": "planner", "tier": "premium", "is_active": "on"}, follow=True
    )
    assert response.status_code == 200
    message = next(str(m) for m in response.context["messages"] if "cl_" in str(m))
    plain = message.split("API key for planner: ")[1].split(" ")[0]
    key = ApiKey.objects.get(name="planner")
    assert key.key_hash == hash_api_key(plain) and key.tier == "premium"
    assert plain not in key.key_hash


def test_log_list_is_fast_and_filterable(admin_client_logged_in, api, make_case, django_assert_max_num_queries):
    case = make_case()
    api.post("/api/logs/", [{"case_id": str(case.id), "success": i % 2 == 0, "execution_time_ms": 10,
                             "error_type": "" if i % 2 == 0 else "TimeoutError"} for i in range(60)], format="json")
    url = reverse("admin:reflection_executionlog_changelist")
    with django_assert_max_num_queries(12):
        response = admin_client_logged_in.get(url)
    assert response.status_code == 200
    assert "TimeoutError (30)" in response.content.decode()
    filtered = admin_client_logged_in.get(url, {"success__exact": "0", "error_type": "TimeoutError"})
    assert filtered.context["cl"].result_count == 30
