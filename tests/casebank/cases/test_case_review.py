"""Cases pending review (filed by sessions): out of retrieval until a reviewer approves them,
decided in their own admin queue with a permission, audited, and visible in the API."""
from __future__ import annotations

import numpy as np
import pytest
from django.contrib.admin.models import LogEntry

from casebank.cases import services
from casebank.models import Case, CaseReviewChange, ReviewState
from casebank.search.embeddings import embed_text
from casebank.search.selectors import case_search
from casebank.search.services import search_text
from core.errors import Conflict, InvalidInput

pytestmark = pytest.mark.django_db

QUEUE = "/admin/casebank/pendingcase/"
QUERY = "Weekly count of refund requests by product line"


@pytest.fixture
def pending(make_case):
    return make_case(title="Refund requests per product line", query=QUERY, category="sessions",
                     tags=["from-session"], review_state=ReviewState.PENDING)


def test_a_pending_case_gets_its_vector_when_approved_not_before(pending):
    # No search may read a pending case's vector, so a session's end does not compute one.
    assert Case.objects.get(pk=pending.pk).embedding is None
    services.case_review_approve(case=pending, actor="reviewer")
    stored = Case.objects.get(pk=pending.pk).embedding
    expected = embed_text(search_text(pending.title, pending.query))
    assert stored is not None and np.allclose(np.asarray(stored, dtype=np.float32), expected, atol=1e-5)


def test_a_rejected_case_never_gets_a_vector(pending):
    services.case_review_reject(case=pending, actor="reviewer", note="wrong plan")
    assert Case.objects.get(pk=pending.pk).embedding is None


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid"])
def test_it_keeps_a_pending_case_out_of_retrieval_until_approved(pending, mode):
    assert pending.id not in {hit.case.id for hit in case_search(query=QUERY, k=5, mode=mode)}
    services.case_review_approve(case=pending, actor="reviewer")
    assert case_search(query=QUERY, k=5, mode=mode)[0].case.id == pending.id


def test_it_audits_an_approval_and_refuses_a_second_decision(pending):
    approved = services.case_review_approve(case=pending, actor="reviewer", note="good plan")
    assert approved.review_state == ReviewState.APPROVED and approved.updated_by == "reviewer"
    change = CaseReviewChange.objects.get(case=pending)
    assert (change.from_state, change.to_state, change.actor, change.note) == ("pending", "approved", "reviewer", "good plan")
    with pytest.raises(Conflict):
        services.case_review_reject(case=pending, actor="reviewer", note="changed my mind")
    assert Case.objects.get(pk=pending.pk).review_state == ReviewState.APPROVED


def test_it_needs_a_note_to_reject_and_keeps_a_rejected_case_out(pending):
    with pytest.raises(InvalidInput):
        services.case_review_reject(case=pending, actor="reviewer", note="  ")
    services.case_review_reject(case=pending, actor="reviewer", note="one-off question")
    assert Case.objects.get(pk=pending.pk).review_state == ReviewState.REJECTED
    assert pending.id not in {hit.case.id for hit in case_search(query=QUERY, k=5)}


def test_it_lists_only_pending_cases_in_the_review_queue(client, reviewer, pending, make_case):
    approved = make_case(title="An approved case")
    client.force_login(reviewer)
    page = client.get(QUEUE).content.decode()
    assert f"/{pending.pk}/change/" in page and f"/{approved.pk}/change/" not in page
    detail = client.get(f"{QUEUE}{pending.pk}/change/").content.decode()
    assert "Approve as a reusable plan" in detail and "Refund requests per product line" in detail


def test_it_approves_from_the_queue_with_audit_and_a_log_entry(client, reviewer, pending):
    client.force_login(reviewer)
    confirm = client.post(QUEUE, {"action": "approve_selected", "_selected_action": [pending.pk]})
    assert confirm.status_code == 200 and "Yes, approve" in confirm.content.decode()
    assert Case.objects.get(pk=pending.pk).review_state == ReviewState.PENDING

    response = client.post(QUEUE, {"action": "approve_selected", "_selected_action": [pending.pk], "apply": "1"})
    assert response.status_code == 302
    assert Case.objects.get(pk=pending.pk).review_state == ReviewState.APPROVED
    assert CaseReviewChange.objects.get(case=pending).actor == "reviewer"
    assert LogEntry.objects.filter(object_id=str(pending.pk), user=reviewer).exists()


def test_it_rejects_from_the_queue_only_with_a_note(client, reviewer, pending):
    client.force_login(reviewer)
    form = {"action": "reject_selected", "_selected_action": [pending.pk], "apply": "1"}
    again = client.post(QUEUE, form)
    assert again.status_code == 200 and "A note is required" in again.content.decode()
    assert client.post(QUEUE, {**form, "note": "too specific"}).status_code == 302
    assert Case.objects.get(pk=pending.pk).review_state == ReviewState.REJECTED
    assert CaseReviewChange.objects.get(case=pending).note == "too specific"


def test_it_refuses_decisions_and_hides_the_buttons_without_the_permission(client, onlooker, pending):
    client.force_login(onlooker)
    assert client.get(QUEUE).status_code == 200
    detail = client.get(f"{QUEUE}{pending.pk}/change/").content.decode()
    assert "Refund requests per product line" in detail and "Approve as a reusable plan" not in detail
    client.post(QUEUE, {"action": "approve_selected", "_selected_action": [pending.pk], "apply": "1"})
    assert Case.objects.get(pk=pending.pk).review_state == ReviewState.PENDING
    assert not CaseReviewChange.objects.exists()


def test_it_shows_the_review_state_in_the_case_api_and_filters_by_it(api, pending, make_case):
    approved = make_case(title="Approved one")
    assert api.get(f"/api/cases/{pending.pk}/").json()["review_state"] == "pending"
    assert api.get(f"/api/cases/{approved.pk}/").json()["review_state"] == "approved"
    listed = api.get("/api/cases/", {"review_state": "pending"}).json()["results"]
    assert [row["id"] for row in listed] == [str(pending.pk)]
    assert api.get("/api/cases/", {"review_state": "nonsense"}).status_code == 400


def test_it_documents_the_review_state_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schemas = schema["components"]["schemas"]
    field = schemas["CaseOutput"]["properties"]["review_state"]
    assert field["readOnly"] is True
    assert field["allOf"] == [{"$ref": "#/components/schemas/ReviewStateEnum"}]
    assert schemas["ReviewStateEnum"]["enum"] == ["approved", "pending", "rejected"]
    parameters = schema["paths"]["/api/cases/"]["get"]["parameters"]
    assert "review_state" in {p["name"] for p in parameters}


def test_the_migration_moves_tagged_warning_cases_into_the_review_queue(make_case):
    import importlib

    from django.apps import apps

    from casebank.models import CaseStatus, CaseStatusChange

    migration = importlib.import_module("casebank.migrations.0006_case_review_state")
    old_style = make_case(title="Filed by a session", category="sessions", tags=["pending-review", "from-session"],
                          status=CaseStatus.WARNING)
    untagged = make_case(title="Ordinary session case", category="sessions", tags=["from-session"],
                         status=CaseStatus.WARNING)
    migration.tagged_cases_to_pending(apps, None)

    old_style.refresh_from_db()
    untagged.refresh_from_db()
    assert (old_style.review_state, old_style.status, old_style.tags) == (ReviewState.PENDING, CaseStatus.ACTIVE, ["from-session"])
    assert CaseStatusChange.objects.get(case=old_style).actor == "migration"
    assert (untagged.review_state, untagged.status) == (ReviewState.APPROVED, CaseStatus.WARNING)
