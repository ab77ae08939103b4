from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from casebank.access import services
from casebank.models import ApiKey, ApiTier

pytestmark = pytest.mark.django_db


def test_a_revoked_key_is_refused_at_once_although_it_was_cached(api, api_key):
    key, _ = api_key
    assert api.get("/api/cases/").status_code == 200  # now cached
    services.api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk))
    response = api.get("/api/cases/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_a_key_revoked_in_admin_is_refused_at_once(api, api_key, admin_client_logged_in):
    key, _ = api_key
    assert api.get("/api/cases/").status_code == 200
    response = admin_client_logged_in.post(
        reverse("admin:casebank_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    assert not ApiKey.objects.get(pk=key.pk).is_active
    assert api.get("/api/cases/").status_code == 401


def test_a_key_deleted_in_admin_is_refused_at_once(api, api_key, admin_client_logged_in):
    key, _ = api_key
    assert api.get("/api/cases/").status_code == 200
    response = admin_client_logged_in.post(
        reverse("admin:casebank_apikey_delete", args=[key.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert api.get("/api/cases/").status_code == 401


def test_a_cached_key_skips_the_database(api, api_key):
    api.get("/api/cases/")
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/cases/").status_code == 200
    assert not [q for q in queries.captured_queries if "casebank_apikey" in q["sql"]]


def test_without_the_cache_every_request_asks_the_database(api, api_key, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    key, _ = api_key
    assert api.get("/api/cases/").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)  # behind the services' back
    assert api.get("/api/cases/").status_code == 401


def test_a_tier_change_takes_effect_at_once(api, api_key):
    key, plain = api_key
    assert services.api_key_active(plain_key=plain).tier == ApiTier.STANDARD
    services.api_key_update(api_key=key, name=key.name, tier=ApiTier.PREMIUM, user=key.user, is_active=True)
    assert services.api_key_active(plain_key=plain).tier == ApiTier.PREMIUM


def test_unknown_keys_are_not_cached(anonymous_api):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token cl_nobody")
    assert anonymous_api.get("/api/cases/").status_code == 401
    with CaptureQueriesContext(connection) as queries:
        assert anonymous_api.get("/api/cases/").status_code == 401
    assert [q for q in queries.captured_queries if "casebank_apikey" in q["sql"]]


def test_a_key_of_a_deactivated_user_is_refused(api, api_key):
    key, _ = api_key
    key.user.is_active = False
    key.user.save()
    assert api.get("/api/cases/").status_code == 401


def test_it_records_when_a_key_was_last_used(api, api_key):
    key, _ = api_key
    assert ApiKey.objects.get(pk=key.pk).last_used_at is None
    api.get("/api/cases/")
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


@pytest.mark.parametrize("header", ["Token", "Token a b", "Bearer abc", "token"])
def test_malformed_headers_get_401(anonymous_api, header):
    anonymous_api.credentials(HTTP_AUTHORIZATION=header)
    assert anonymous_api.get("/api/cases/").status_code == 401


def test_only_a_hash_is_stored():
    key, plain = services.api_key_create(name="client")
    assert plain.startswith("cl_") and len(plain) > 40
    assert key.prefix == plain[:10]
    assert plain not in {key.key_hash, key.name}
    assert key.user.username == "api-client" and not key.user.has_usable_password()
