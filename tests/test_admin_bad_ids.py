"""Every admin page that takes an object id answers a malformed or unknown one like Django's own
pages (a redirect with a message, or 404), never with a 500."""
from __future__ import annotations

import uuid

import pytest
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db

APPS = ("casebank", "reflection", "agents")
BAD_IDS = ("abc", "0", str(uuid.UUID(int=0)), "1%2F..")
MODEL_ADMINS = sorted(
    (model._meta.app_label, model._meta.model_name)
    for model in admin.site._registry
    if model._meta.app_label in APPS
)


@pytest.mark.parametrize(("app", "model"), MODEL_ADMINS)
@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_it_never_fails_on_a_bad_object_id(admin_client_logged_in, app, model, bad_id):
    changelist = reverse(f"admin:{app}_{model}_changelist")
    for page in ("change", "history", "delete"):
        response = admin_client_logged_in.get(f"{changelist}{bad_id}/{page}/")
        assert response.status_code in (302, 403, 404), (page, response.status_code)


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_it_answers_404_for_a_rollback_of_a_bad_case_id(admin_client_logged_in, bad_id):
    response = admin_client_logged_in.get(f"/admin/casebank/case/{bad_id}/rollback/1/")
    assert response.status_code == 404


def test_it_answers_404_for_the_analysis_page_of_a_bad_case_id(admin_client_logged_in):
    # Not a UUID: the URL does not match the page, Django's catch-all redirects to a change page.
    assert admin_client_logged_in.get("/admin/reflection/caseanalysis/case/abc/", follow=True).status_code == 200
    assert admin_client_logged_in.get(f"/admin/reflection/caseanalysis/case/{uuid.uuid4()}/").status_code == 404
