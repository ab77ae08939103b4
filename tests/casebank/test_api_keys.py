from __future__ import annotations

import pytest

from casebank import services
from casebank.models import ApiKey

pytestmark = pytest.mark.django_db


def test_a_revoked_key_is_refused(api, api_key):
    key, _ = api_key
    assert api.get("/api/cases/").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)
    response = api.get("/api/cases/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


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
