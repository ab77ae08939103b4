"""Making keys with the scopes they need: `create_api_key --scope/--all-scopes/--user` and the
API-key admin; a scope change takes effect at once, like revocation."""
from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from casebank.access import services
from casebank.access.scopes import ALL_SCOPES, DEFAULT_SCOPES
from casebank.models import ApiKey

pytestmark = pytest.mark.django_db


def _create(*args: str) -> tuple[ApiKey, str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return ApiKey.objects.get(name=args[0]), out.getvalue().strip(), err.getvalue()


def _client(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def test_a_new_key_gets_the_agent_scopes_and_a_service_user():
    key, plain, told = _create("agent")
    assert key.scopes == list(DEFAULT_SCOPES) and key.user.username == "api-agent"
    assert "logs:write, cases:read, sessions" in told
    assert _client(plain).get("/api/suggestions/").status_code == 403


def test_it_makes_a_reviewers_key_for_an_existing_user(reviewer):
    key, plain, told = _create("reviewer-key", "--scope", "cases:read", "--scope", "reflection",
                               "--scope", "review", "--user", "reviewer")
    assert key.user == reviewer and key.scopes == ["cases:read", "reflection", "review"]
    assert "for user 'reviewer'" in told
    assert _client(plain).get("/api/suggestions/").status_code == 200


def test_all_scopes():
    key, _, _ = _create("operator", "--all-scopes")
    assert key.scopes == list(ALL_SCOPES)
    with pytest.raises(CommandError, match="not both"):
        _create("operator-2", "--all-scopes", "--scope", "review")


def test_it_refuses_an_unknown_scope_listing_the_valid_ones():
    with pytest.raises(CommandError) as refused:
        _create("typo", "--scope", "cases:wirte")
    assert "cases:wirte" in str(refused.value)
    for scope in ALL_SCOPES:
        assert scope in str(refused.value)
    assert not ApiKey.objects.filter(name="typo").exists()


def test_it_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        _create("orphan", "--user", "nobody")
    assert not ApiKey.objects.filter(name="orphan").exists()


def test_the_admin_adds_a_key_with_ticked_scopes(admin_client_logged_in):
    response = admin_client_logged_in.post(
        reverse("admin:casebank_apikey_add"),
        {"name": "reader", "tier": "standard", "scopes": ["cases:read", "reflection"], "is_active": "on"},
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(name="reader").scopes == ["cases:read", "reflection"]


def test_the_admin_refuses_an_unknown_scope(admin_client_logged_in):
    response = admin_client_logged_in.post(
        reverse("admin:casebank_apikey_add"), {"name": "bad", "tier": "standard", "scopes": ["root"], "is_active": "on"},
    )
    assert response.status_code == 200 and "root is not one of the available choices" in response.content.decode()
    assert not ApiKey.objects.filter(name="bad").exists()


def test_a_scope_removed_in_admin_is_refused_at_once(admin_client_logged_in):
    key, plain = services.api_key_create(name="agent")
    client = _client(plain)
    assert client.get("/api/cases/").status_code == 200  # the key is cached now
    change = reverse("admin:casebank_apikey_change", args=[key.pk])
    form = admin_client_logged_in.get(change).content.decode()
    assert form.count('type="checkbox" name="scopes"') == len(ALL_SCOPES)
    response = admin_client_logged_in.post(change, {
        "name": "agent", "tier": "standard", "user": key.user_id, "scopes": ["logs:write", "sessions"], "is_active": "on",
    })
    assert response.status_code == 302, response.content[:500]
    assert ApiKey.objects.get(pk=key.pk).scopes == ["logs:write", "sessions"]
    response = client.get("/api/cases/")
    assert response.status_code == 403 and "'cases:read'" in response.json()["detail"]


def test_the_scopes_service_refuses_unknown_scopes():
    from core.errors import InvalidInput

    key, _ = services.api_key_create(name="agent")
    with pytest.raises(InvalidInput, match="Valid scopes"):
        services.api_key_update(api_key=key, name=key.name, tier=key.tier, user=key.user, is_active=True,
                                scopes=["everything"])
    assert ApiKey.objects.get(pk=key.pk).scopes == list(DEFAULT_SCOPES)
