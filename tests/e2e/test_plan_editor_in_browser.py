"""Issue #19: the plan editor as a person uses it: add a step, move it up, switch to the JSON
view and back, save; the case gets the plan that was on screen."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from casebank.models import Case
from tests.e2e.admin_login import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_adds_moves_and_saves_steps_and_keeps_the_json_view_in_step(page: Page, make_case, superuser):
    case = make_case(plan=[{"agent": "data_analysis", "action": "Sum revenue"}])
    log_in(page, "root", next_path=f"/admin/casebank/case/{case.pk}/change/")

    rows = page.locator(".plan-step")
    page.get_by_role("button", name="Add step").click()
    new = rows.nth(rows.count() - 1)
    new.locator("select").select_option("information_retrieval")
    new.locator("input[aria-label=action]").fill("Find the policy")
    new.locator("input[aria-label=params]").fill('{"top": 3}')
    # Move it to the top, one row at a time (past the blank spare rows, ignored when saved).
    for index in range(rows.count() - 1, 0, -1):
        rows.nth(index).get_by_title("Move up").click()
    expect(rows.first.locator("input[aria-label=action]")).to_have_value("Find the policy")

    page.get_by_label("JSON").check()
    shown = json.loads(page.locator("textarea#id_plan").input_value())
    assert shown == [{"top": 3, "agent": "information_retrieval", "action": "Find the policy"},
                     {"agent": "data_analysis", "action": "Sum revenue"}]
    page.get_by_label("Steps").check()
    expect(page.locator(".plan-step").first.locator("input[aria-label=action]")).to_have_value("Find the policy")

    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("changed successfully")
    saved = Case.objects.get(pk=case.pk)
    assert saved.version == 2
    assert saved.plan == [{"top": 3, "agent": "information_retrieval", "action": "Find the policy"},
                          {"agent": "data_analysis", "action": "Sum revenue"}]
