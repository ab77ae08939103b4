"""Cached search results and case reads: served without the database, retired by any write."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from casebank.cases import services
from casebank.models import CaseStatus

pytestmark = pytest.mark.django_db


def _search(api, query: str = "monthly revenue region") -> list[dict]:
    response = api.post("/api/cases/search/", {"query": query, "mode": "bm25", "k": 5}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _case_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "casebank_case" in q["sql"]]


def test_a_repeated_search_is_served_without_the_database(api, make_case):
    make_case(title="Monthly revenue by region")
    first = _search(api)
    with CaptureQueriesContext(connection) as queries:
        again = _search(api)
    assert again == first and len(first) == 1
    assert _case_queries(queries) == []


def test_a_new_case_is_found_at_once(api, make_case):
    make_case(title="Monthly revenue by region")
    assert len(_search(api)) == 1
    make_case(title="Revenue by region, monthly, for finance")
    assert len(_search(api)) == 2


def test_an_edit_shows_in_search_and_in_the_case_at_once(api, make_case):
    case = make_case(title="Monthly revenue by region")
    assert _search(api)[0]["version"] == 1
    assert api.get(f"/api/cases/{case.pk}/").json()["version"] == 1
    response = api.patch(f"/api/cases/{case.pk}/", {"title": "Monthly revenue by sales region"}, format="json")
    assert response.status_code == 200
    assert _search(api)[0]["title"] == "Monthly revenue by sales region"
    assert api.get(f"/api/cases/{case.pk}/").json()["version"] == 2


def test_an_archived_case_leaves_search_at_once(api, make_case):
    case = make_case(title="Monthly revenue by region")
    assert len(_search(api)) == 1
    services.case_set_status(case=case, status=CaseStatus.ARCHIVED, actor="test")
    assert _search(api) == []


def test_new_metrics_show_at_once(api, make_case):
    case = make_case(title="Monthly revenue by region")
    assert api.get(f"/api/cases/{case.pk}/").json()["success_rate"] is None
    services.case_update_metrics_many(metrics={case.pk: services.CaseMetrics(0.25, 8)})
    body = api.get(f"/api/cases/{case.pk}/").json()
    assert (body["success_rate"], body["run_count"]) == (0.25, 8)


def test_a_cached_case_read_skips_the_database(api, make_case):
    case = make_case()
    first = api.get(f"/api/cases/{case.pk}/").json()
    with CaptureQueriesContext(connection) as queries:
        again = api.get(f"/api/cases/{case.pk}/").json()
    assert again == first and _case_queries(queries) == []


def test_an_unknown_case_is_still_404_and_not_cached(api, make_case):
    import uuid

    missing = uuid.uuid4()
    assert api.get(f"/api/cases/{missing}/").status_code == 404
    assert api.get(f"/api/cases/{missing}/").status_code == 404


def test_with_the_cache_off_every_read_asks_the_database(api, make_case, settings):
    settings.READ_CACHE_SECONDS = 0
    make_case(title="Monthly revenue by region")
    _search(api)
    with CaptureQueriesContext(connection) as queries:
        _search(api)
    assert _case_queries(queries)
