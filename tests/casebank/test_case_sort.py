"""sort=success: cases never analysed (null rate) come last, both ways, on both databases."""
from __future__ import annotations

import pytest

from casebank import services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("sort, expected", [("success", ["high", "low", "new"]), ("-success", ["low", "high", "new"])])
def test_never_analysed_cases_come_last(api, make_case, sort, expected):
    for title, rate in (("new", None), ("low", 0.2), ("high", 0.9)):
        case = make_case(title=title)
        if rate is not None:
            services.case_update_metrics(case_id=case.pk, success_rate=rate, run_count=10)

    body = api.get("/api/cases/", {"sort": sort}).json()

    assert [case["title"] for case in body["results"]] == expected
