"""Issue #19: consistent links between case, version, log list, session and suggestion; each
link is followed and lands on the rows it names."""
from __future__ import annotations

import re
import uuid
from html import unescape

import pytest

from agents.models import Session
from casebank.cases import services as case_services
from reflection.models import ExecutionLog
from tests.reflection.suggestion_helpers import add_logs, make_suggestion

pytestmark = pytest.mark.django_db


def _hrefs(html: str, text: str) -> list[str]:
    return [unescape(href) for href, label in re.findall(r'<a href="([^"]+)"[^>]*>([^<]*)</a>', html) if label == text]


def _listed(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["cl"].result_count


@pytest.fixture
def two_versions(make_case):
    case = make_case()
    add_logs(case, successes=2, failures=0)
    case = case_services.case_update(case=case, actor="tester", plan=[{"agent": "supervisor", "action": "Answer"}])
    add_logs(case, successes=1, failures=2)
    return case


def test_the_case_page_links_to_each_versions_logs_and_its_suggestions_and_sessions(admin_client_logged_in, two_versions):
    case = two_versions
    make_suggestion(case)
    Session.objects.create(query="q", case=case, case_version=2)
    page = admin_client_logged_in.get(f"/admin/casebank/case/{case.pk}/change/").content.decode()
    assert _listed(admin_client_logged_in, _hrefs(page, "logs of v1")[0]) == 2
    assert _listed(admin_client_logged_in, _hrefs(page, "logs of v2")[0]) == 3
    assert _listed(admin_client_logged_in, _hrefs(page, "Execution logs")[0]) == 5
    assert _listed(admin_client_logged_in, _hrefs(page, "Suggestions")[0]) == 1
    assert _listed(admin_client_logged_in, _hrefs(page, "Sessions")[0]) == 1


def test_the_log_list_links_each_row_to_its_version_and_session(admin_client_logged_in, two_versions):
    case = two_versions
    session = Session.objects.create(query="q", case=case, case_version=2)
    ExecutionLog.objects.filter(case_version=2, success=True).update(session_id=session.pk)
    listing = admin_client_logged_in.get("/admin/reflection/executionlog/").content.decode()
    assert {_listed(admin_client_logged_in, href) for href in _hrefs(listing, "v1") + _hrefs(listing, "v2")} == {2, 3}
    (session_href,) = _hrefs(listing, "session")
    assert admin_client_logged_in.get(session_href).status_code == 200 and str(session.pk) in session_href
    # The filter names itself while it applies, so a filtered list never looks like the whole log.
    filtered = admin_client_logged_in.get(f"/admin/reflection/executionlog/?case__id__exact={case.pk}&case_version=1")
    assert "v1" in filtered.content.decode().split('id="changelist-filter"')[1]


@pytest.mark.parametrize("bad", ["abc", "-1", "9" * 40, "1.5"])
def test_a_bad_version_in_the_url_is_refused_not_a_500(admin_client_logged_in, bad):
    response = admin_client_logged_in.get(f"/admin/reflection/executionlog/?case_version={bad}")
    assert response.status_code == 302 and "e=1" in response["Location"]


def test_a_suggestion_links_to_its_case_and_the_logs_of_its_versions(admin_client_logged_in, two_versions):
    suggestion = make_suggestion(two_versions, base_version=1)
    page = admin_client_logged_in.get(f"/admin/reflection/suggestion/{suggestion.pk}/change/").content.decode()
    assert f"/admin/casebank/case/{two_versions.pk}/change/" in page
    assert f"/admin/casebank/case/{two_versions.pk}/change/#versions-group" in _hrefs(page, "v1")
    assert _listed(admin_client_logged_in, _hrefs(page, "its logs")[0]) == 2


def test_another_sessions_id_finds_nothing(admin_client_logged_in, two_versions):
    assert _listed(admin_client_logged_in, f"/admin/reflection/executionlog/?session_id={uuid.uuid4()}") == 0
