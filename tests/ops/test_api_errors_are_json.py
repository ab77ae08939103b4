from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_it_answers_json_for_an_api_path_no_route_matches(api):
    response = api.post("/api/suggestions/-1/reject", {"note": "x"}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "errors": {}}


def test_it_keeps_the_html_page_outside_the_api(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]


def test_it_hides_a_crash_and_its_secrets_behind_a_json_500(api_key, monkeypatch):
    from casebank.cases import selectors

    secret = "postgres://caseloop:hunter2-db-password@db/caseloop"

    def crash(**kwargs):
        raise RuntimeError(f"could not connect to {secret}")

    monkeypatch.setattr(selectors, "case_list", crash)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_key[1]}")
    response = client.get("/api/cases/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail", "errors"}
    assert "hunter2" not in response.content.decode()
