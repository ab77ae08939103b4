from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from core.roles import REVIEWER_PERMISSIONS, REVIEWERS

pytestmark = pytest.mark.django_db


def _setup() -> str:
    out = StringIO()
    call_command("setup_roles", stdout=out)
    return out.getvalue()


def test_it_creates_reviewers_with_view_and_approve_only():
    output = _setup()
    assert "Created group 'Reviewers'" in output
    group = Group.objects.get(name=REVIEWERS)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert "approve_suggestion" in codenames
    assert {"view_case", "view_executionlog", "view_suggestion"} <= codenames
    assert {"review_case", "view_pendingcase"} <= codenames
    assert all(code.startswith("view_") or code in ("approve_suggestion", "review_case") for code in codenames)
    assert len(codenames) == len(REVIEWER_PERMISSIONS) - output.count("skipped")


def test_it_is_idempotent_and_removes_extra_grants():
    _setup()
    group = Group.objects.get(name=REVIEWERS)
    group.permissions.add(Permission.objects.get(codename="change_case"))
    output = _setup()
    assert "Updated group 'Reviewers'" in output
    assert Group.objects.filter(name=REVIEWERS).count() == 1
    assert not group.permissions.filter(codename="change_case").exists()


def test_it_lets_only_group_members_approve(django_user_model):
    _setup()
    reviewer = django_user_model.objects.create_user("reviewer", password="pw", is_staff=True)
    reviewer.groups.add(Group.objects.get(name=REVIEWERS))
    outsider = django_user_model.objects.create_user("outsider", password="pw", is_staff=True)
    reviewer = django_user_model.objects.get(pk=reviewer.pk)  # fresh permission cache
    assert reviewer.has_perm("reflection.approve_suggestion")
    assert not reviewer.has_perm("casebank.change_case")
    assert not reviewer.has_perm("casebank.add_apikey")
    assert not outsider.has_perm("reflection.approve_suggestion")


def test_it_keeps_the_admin_staff_only(client, django_user_model):
    _setup()
    member = django_user_model.objects.create_user("member", password="pw", is_staff=False)
    member.groups.add(Group.objects.get(name=REVIEWERS))
    client.force_login(member)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
