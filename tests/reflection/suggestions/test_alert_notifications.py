"""Alerts reach the reviewers by email and a JSON webhook (a real local HTTP server), with retries."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from reflection.suggestions.notifications import post_webhook, reviewer_emails
from reflection.suggestions.tasks import notify_suggestion_created
from tests.conftest import grant
from tests.reflection.suggestion_helpers import PLAN, make_suggestion

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook():
    """A webhook receiver that answers the scripted statuses in turn, then 200."""
    received: list[dict] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": json.loads(body), "content_type": self.headers["Content-Type"]})
            self.send_response(statuses.pop(0) if statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received, server.statuses = received, statuses
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def people(django_user_model):
    django_user_model.objects.create_superuser("root", email="root@example.com", password="pw")
    reviewer = django_user_model.objects.create_user("rev", email="rev@example.com", password="pw")
    grant(reviewer, "approve_suggestion")
    django_user_model.objects.create_user("nobody", email="nobody@example.com", password="pw")
    django_user_model.objects.create_user("gone", email="gone@example.com", password="pw", is_active=False, is_superuser=True)


def test_it_emails_superusers_and_reviewers_only(people, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    assert reviewer_emails() == ["ops@example.com", "rev@example.com", "root@example.com"]


def test_it_emails_and_posts_a_new_suggestion(people, webhook, settings, make_case):
    settings.ALERT_WEBHOOK_URL = webhook.url
    suggestion = make_suggestion(make_case(plan=PLAN))
    result = notify_suggestion_created(suggestion.pk)
    assert result["webhook"] is True
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["rev@example.com", "root@example.com"]
    assert suggestion.rationale in message.body and f"/admin/reflection/suggestion/{suggestion.pk}/change/" in message.body
    body = webhook.received[0]["body"]
    assert webhook.received[0]["content_type"] == "application/json"
    assert (body["event"], body["suggestion_id"], body["case_id"]) == ("suggestion.created", suggestion.pk, str(suggestion.case_id))


def test_it_retries_the_webhook_after_server_errors(webhook):
    webhook.statuses.extend([500, 503])
    assert post_webhook(url=webhook.url, payload={"event": "x"}, attempts=3, backoff_seconds=0.01, timeout=2)
    assert len(webhook.received) == 3


def test_it_gives_up_after_the_last_attempt(webhook):
    webhook.statuses.extend([500, 500, 500, 500])
    assert not post_webhook(url=webhook.url, payload={"event": "x"}, attempts=3, backoff_seconds=0.01, timeout=2)
    assert len(webhook.received) == 3


def test_it_does_not_retry_a_client_error(webhook):
    webhook.statuses.append(404)
    assert not post_webhook(url=webhook.url, payload={"event": "x"}, attempts=3, backoff_seconds=0.01, timeout=2)
    assert len(webhook.received) == 1


def test_it_retries_when_nothing_listens():
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    assert not post_webhook(url=f"http://127.0.0.1:{port}/", payload={}, attempts=2, backoff_seconds=0.01, timeout=1)
