"""The OpenAPI schema and the Swagger page need a key or a staff session, and use no CDN."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_needs_a_key(anonymous_api):
    response = anonymous_api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "credentials were not provided" in response.json()["detail"]


def test_a_key_holder_gets_the_schema(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/logs/" in response.content and b"ApiKey" in response.content


def test_a_stranger_opening_the_docs_is_sent_to_the_admin_sign_in(client):
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/api/docs/")


def test_a_signed_in_staff_member_reads_the_docs_and_the_schema_without_a_cdn(client, staff_user):
    client.force_login(staff_user)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content and b"//cdn." not in docs.content
    assert client.get("/api/schema/").status_code == 200  # what the Swagger page fetches


def test_a_signed_in_user_who_is_not_staff_is_refused(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("outsider", password="pw"))
    assert client.get("/api/docs/").status_code == 302
    assert client.get("/api/schema/").status_code == 403


def test_a_wrong_key_on_the_docs_is_refused(anonymous_api):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token cl_wrong")
    assert anonymous_api.get("/api/docs/").status_code == 401
