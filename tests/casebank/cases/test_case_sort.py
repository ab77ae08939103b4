"""sort=success and sort=last_used: cases never analysed (null rate) or never used come last,
both ways, on both databases."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from casebank.cases import services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("sort, expected", [("success", ["high", "low", "new"]), ("-success", ["low", "high", "new"])])
def test_never_analysed_cases_come_last(api, make_case, sort, expected):
    for title, rate in (("new", None), ("low", 0.2), ("high", 0.9)):
        case = make_case(title=title)
        if rate is not None:
            services.case_update_metrics(case_id=case.pk, metrics=services.CaseMetrics(rate, 10))

    body = api.get("/api/cases/", {"sort": sort}).json()

    assert [case["title"] for case in body["results"]] == expected


@pytest.mark.parametrize("sort, expected", [("last_used", ["recent", "old", "never"]),
                                            ("-last_used", ["old", "recent", "never"])])
def test_never_used_cases_come_last(api, make_case, sort, expected):
    now = timezone.now()
    for title, used_at in (("never", None), ("old", now - timedelta(days=9)), ("recent", now - timedelta(hours=1))):
        case = make_case(title=title)
        if used_at is not None:
            services.case_record_use(case_ids=[case.pk], used_at=used_at)

    body = api.get("/api/cases/", {"sort": sort}).json()

    assert [case["title"] for case in body["results"]] == expected
