"""Issue #19: the case list fits 1,440 px and says what its two counts are."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from casebank.models import Case

pytestmark = pytest.mark.django_db

LONG = "Quarterly revenue by region and product line, with currency conversion and seasonality notes"


def _headers(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html, re.S)]


def test_it_truncates_long_titles_and_keeps_the_full_title_as_a_tooltip(admin_client_logged_in, make_case):
    make_case(title=LONG)
    html = admin_client_logged_in.get(reverse("admin:casebank_case_changelist")).content.decode()
    assert f'title="{LONG}"' in html
    assert f">{LONG}<" not in html  # the cell shows a shortened title on one line
    assert "Quarterly revenue by region and pro…" in html


def test_it_names_the_two_counts_for_what_they_count(admin_client_logged_in, make_case):
    case = make_case(title="Counted")
    Case.objects.filter(pk=case.pk).update(run_count=405, usage_count=359)
    html = admin_client_logged_in.get(reverse("admin:casebank_case_changelist")).content.decode()
    headers = _headers(html)
    assert "Runs (30 d)" in headers and "Times retrieved" in headers
    assert "Run count" not in headers and "Usage count" not in headers
    change = admin_client_logged_in.get(reverse("admin:casebank_case_change", args=[case.pk])).content.decode()
    assert "how often search returned the case to a planner" in change


def test_it_keeps_the_list_to_eight_columns_with_short_dates(admin_client_logged_in, make_case):
    make_case(title="Dated")
    html = admin_client_logged_in.get(reverse("admin:casebank_case_changelist")).content.decode()
    # action checkbox + eight columns: the review state shows only beside a case it keeps out,
    # the version is on the case page.
    assert len(_headers(html)) == 9
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", html)


def test_it_marks_a_case_pending_review_beside_its_status(admin_client_logged_in, make_case):
    make_case(title="From a session", review_state="pending")
    html = admin_client_logged_in.get(reverse("admin:casebank_case_changelist")).content.decode()
    assert "pending review" in html
