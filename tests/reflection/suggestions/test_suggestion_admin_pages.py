from __future__ import annotations

import pytest

from tests.reflection.suggestion_helpers import PLAN, make_suggestion

pytestmark = pytest.mark.django_db

PAGES = ("/admin/reflection/pendingsuggestion/", "/admin/reflection/suggestion/", "/admin/reflection/llmcall/")


@pytest.mark.parametrize("term", ["abc", "1", "Monthly", "case-id"])
def test_it_searches_every_list_without_errors(admin_client_logged_in, make_case, term):
    suggestion = make_suggestion(make_case(plan=PLAN))
    term = str(suggestion.case_id) if term == "case-id" else term
    for url in PAGES:
        assert admin_client_logged_in.get(url, {"q": term}).status_code == 200, url


def test_it_opens_a_suggestion_and_filters_by_verification(admin_client_logged_in, make_case):
    suggestion = make_suggestion(make_case(plan=PLAN))
    assert admin_client_logged_in.get(f"/admin/reflection/suggestion/{suggestion.pk}/change/").status_code == 200
    page = admin_client_logged_in.get("/admin/reflection/suggestion/", {"verification": "regressed"}).content.decode()
    assert f"/{suggestion.pk}/change/" not in page
