"""The WSGI app (gunicorn sync workers) refuses the event stream at once with a JSON 421 naming
where to stream, so open streams can never hold its workers."""
from __future__ import annotations

import http.client
import threading
import uuid

import pytest

from tests.bench.support import server

pytestmark = pytest.mark.django_db


def test_it_refuses_the_stream_under_wsgi_naming_the_stream_url(api, settings):
    settings.SSE_PUBLIC_URL = "https://stream.example.com/"
    session_id = uuid.uuid4()
    response = api.get(f"/api/sessions/{session_id}/stream")  # the test client is WSGI
    assert response.status_code == 421
    body = response.json()
    assert "ASGI" in body["detail"] and f"https://stream.example.com/api/sessions/{session_id}/stream" in body["detail"]
    assert body["errors"]["stream"] and response["Location"].endswith(f"/api/sessions/{session_id}/stream")


def test_it_refuses_without_a_configured_url_too(anonymous_api):
    response = anonymous_api.get(f"/api/sessions/{uuid.uuid4()}/stream")
    assert response.status_code == 421 and "ASGI (SSE) server" in response.json()["detail"]


def test_fifty_streams_to_gunicorn_do_not_hold_its_workers():
    """50 stream requests at once against 2 sync workers: each is answered (before, each held a
    worker for up to an hour: 2 streams stalled the API), and requests in between still are.
    Latency under that load is measured by the sessions benchmark, not here."""
    with server(kind="gunicorn", workers=2) as (base, _):
        host, port = base.removeprefix("http://").split(":")
        headers = {"Authorization": "Token not-needed-for-the-refusal"}
        statuses: list[int] = []

        def stream() -> None:
            client = http.client.HTTPConnection(host, int(port), timeout=30)
            client.request("GET", f"/api/sessions/{uuid.uuid4()}/stream", headers=headers)
            statuses.append(client.getresponse().status)
            client.close()

        threads = [threading.Thread(target=stream) for _ in range(50)]
        for thread in threads:
            thread.start()
        for _ in range(40):
            client = http.client.HTTPConnection(host, int(port), timeout=30)
            client.request("GET", "/health/live")
            response = client.getresponse()
            response.read()
            assert response.status == 200
            client.close()
        for thread in threads:
            thread.join(30)
        assert statuses == [421] * 50 and not any(thread.is_alive() for thread in threads)
