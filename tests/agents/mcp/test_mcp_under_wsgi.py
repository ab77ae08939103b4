"""Under WSGI (gunicorn, the API port) /mcp is refused at once with a JSON 421 naming the ASGI URL."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_it_refuses_mcp_under_wsgi_naming_the_asgi_url(client, settings, method):
    settings.SSE_PUBLIC_URL = "https://stream.example.com/"
    sent = {} if method == "get" else {"data": b"{}"}
    response = getattr(client, method)("/mcp", content_type="application/json", **sent)  # the test client is WSGI
    assert response.status_code == 421
    refusal = response.json()
    assert "MCP endpoint" in refusal["detail"] and "https://stream.example.com/mcp" in refusal["detail"]
    assert refusal["errors"]["mcp"] == ["https://stream.example.com/mcp"] and response["Location"] == "https://stream.example.com/mcp"


def test_without_a_configured_url_it_names_the_asgi_server(client):
    response = client.post("/mcp", data=b"{}", content_type="application/json")
    assert response.status_code == 421 and "ASGI (SSE) server" in response.json()["detail"]


def test_a_post_without_a_csrf_token_is_refused_the_same_way(settings):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/mcp", data=b"{}", content_type="application/json")
    assert response.status_code == 421
