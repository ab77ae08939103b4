"""The rules both senders share (caseloop_client.delivery), and the log ids."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from caseloop_client._ids import uuid7
from caseloop_client.delivery import Attempt, Backoff, judge, retry_after_seconds


def test_retry_after_is_seconds_or_an_http_date():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("-3") == 0.0
    in_a_minute = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=60), usegmt=True)
    assert 55 <= (retry_after_seconds(in_a_minute) or 0) <= 60
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_backoff_grows_with_jitter_and_honours_retry_after():
    backoff = Backoff(base=1.0, cap=8.0, max_wait=60.0)
    delays = [backoff.delay(4) for _ in range(200)]
    assert all(0 <= delay <= 8.0 for delay in delays) and len(set(delays)) > 100  # jittered
    assert max(backoff.delay(1) for _ in range(200)) <= 1.0
    assert backoff.delay(1, retry_after=30) >= 30
    assert backoff.delay(1, retry_after=3_600) == 60.0  # a server asking for an hour gets max_wait


def test_the_verdict_of_each_answer():
    assert judge(Attempt(201, {"ids": [], "created": 2, "duplicates": 1}), 3).sent == 3
    assert judge(Attempt(None, error="ConnectError"), 3).action == "retry"
    assert judge(Attempt(None, error="UnsupportedProtocol", retryable=False), 3).action == "give_up"
    for status in (408, 429, 500, 502, 503, 504):
        assert judge(Attempt(status), 3).action == "retry"
    refused = judge(Attempt(400, {"detail": "1 of 3 logs are invalid", "errors": {"1": {"case_id": "No case"}}}), 3)
    assert (refused.action, refused.keep, refused.failed) == ("resend", [0, 2], 1)
    whole = judge(Attempt(400, {"detail": "At most 1000", "errors": {"non_field_errors": ["..."]}}), 3)
    assert whole.action == "split"  # halves find the log it did not name
    assert judge(Attempt(401, {"detail": "Invalid token."}), 3).action == "give_up"
    assert judge(Attempt(413), 3).action == "split"
    partial = judge(Attempt(207, {"created": 2, "duplicates": 0, "errors": {"2": {"id": "bad"}}}), 3)
    assert (partial.action, partial.sent, partial.failed) == ("stored", 2, 1)


def test_log_ids_are_uuid7_in_time_order():
    ids = [uuid7() for _ in range(50)]
    assert all(isinstance(value, uuid.UUID) and value.version == 7 for value in ids)
    assert [value.bytes[:6] for value in ids] == sorted(value.bytes[:6] for value in ids)
