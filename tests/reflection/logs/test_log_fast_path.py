"""The typed fast path (reflection.log_decoding) never accepts what the validator refuses, and
where both accept a log they make the same record of it.

The validator, `ingestion.parse_record`, defines what a valid log is and names every problem;
msgspec only ever takes a shortcut for bodies it can check completely. A body it is unsure of
goes the slow way, so disagreement can only cost time, never let a bad log in. These tests
hold that with hand-picked edge cases and with generated logs.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from django.utils import timezone as dj_timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from reflection.logs import services as ingestion
from reflection.logs.decoding import decode_typed
from reflection.models import ExecutionLog

GOOD = {"success": True, "execution_time_ms": 120}
SAME_FIELDS = ("success", "error_type", "error_message", "execution_time_ms", "tokens_in", "tokens_out",
               "cost_usd", "model", "context", "case_id", "case_version", "session_id")


def _fast(item: object) -> list | None:
    """The fast path's records for a one-log body, or None where it defers to the validator."""
    typed = decode_typed(orjson.dumps(item))
    return None if typed is None else ingestion._finish_typed(typed.logs)


def _assert_agrees(item: object) -> None:
    fast = _fast(item)
    if fast is None:
        return  # deferred: the validator alone decides
    record, errors = ingestion.parse_record(item, dj_timezone.now())
    assert not errors, f"fast path accepted {item!r}; the validator refuses it: {errors}"
    (settled,) = fast
    for name in SAME_FIELDS:
        assert getattr(settled, name) == getattr(record, name), name
    assert type(settled.execution_time_ms) is int
    if isinstance(item, dict) and item.get("id") is not None:
        assert settled.id == record.id
    if isinstance(item, dict) and item.get("created_at") is not None:
        assert settled.created_at == record.created_at


EDGE_CASES = [
    GOOD,
    {**GOOD, "execution_time_ms": 1.5},
    {**GOOD, "execution_time_ms": 2.5},
    {**GOOD, "execution_time_ms": 86_400_000},
    {**GOOD, "execution_time_ms": 86_400_001},
    {**GOOD, "execution_time_ms": -1},
    {**GOOD, "execution_time_ms": True},
    {**GOOD, "execution_time_ms": "5"},
    {"success": 1, "execution_time_ms": 5},
    {"execution_time_ms": 5},
    {**GOOD, "case_version": 0},
    {**GOOD, "case_version": 2.0},
    {**GOOD, "case_version": 2**31},
    {**GOOD, "tokens_in": 2**31 - 1},
    {**GOOD, "tokens_in": 2**31},
    {**GOOD, "tokens_out": -1},
    {**GOOD, "tokens_out": None},
    {**GOOD, "cost_usd": 0},
    {**GOOD, "cost_usd": -0.01},
    {**GOOD, "cost_usd": "1"},
    {**GOOD, "model": "é" * 100},
    {**GOOD, "model": "é" * 101},
    {**GOOD, "error_type": None},
    {**GOOD, "error_message": "x" * 10_000},
    {**GOOD, "error_message": "x" * 10_001},
    {**GOOD, "error_message": "nul \u0000 inside"},
    {**GOOD, "context": {"path": "C:\\u0000"}},
    {**GOOD, "context": {"k\u0000": 1}},
    {**GOOD, "context": []},
    {**GOOD, "context": None},
    {**GOOD, "context": {"big": "x" * (64 * 1024)}},
    {**GOOD, "id": "12345678-1234-5678-1234-567812345678"},
    {**GOOD, "id": "12345678123456781234567812345678"},
    {**GOOD, "id": "{12345678-1234-5678-1234-567812345678}"},
    {**GOOD, "id": "urn:uuid:12345678-1234-5678-1234-567812345678"},
    {**GOOD, "id": "not-a-uuid"},
    {**GOOD, "id": 5},
    {**GOOD, "case_id": None},
    {**GOOD, "session_id": "12345678-1234-5678-1234-56781234567"},
    {**GOOD, "created_at": "2026-01-01T00:00:00"},
    {**GOOD, "created_at": "2026-01-01T00:00:00Z"},
    {**GOOD, "created_at": "2026-01-01 00:00:00+02:00"},
    {**GOOD, "created_at": "2026-01-01"},
    {**GOOD, "created_at": "2026-01-01T00:00:00.123456789Z"},
    {**GOOD, "created_at": "1999-12-31T23:59:59Z"},
    {**GOOD, "created_at": "0001-01-01T00:00:00+01:00"},
    {**GOOD, "created_at": "9999-12-31T23:59:59Z"},
    {**GOOD, "created_at": (datetime.now(timezone.utc) + timedelta(minutes=4)).isoformat()},
    {**GOOD, "created_at": (datetime.now(timezone.utc) + timedelta(minutes=6)).isoformat()},
    {**GOOD, "created_at": 1_700_000_000},
    {**GOOD, "unknown": 1},
    "a string",
    [],
]


@pytest.mark.parametrize("item", EDGE_CASES)
def test_it_agrees_with_the_validator_on_edge_cases(item):
    _assert_agrees(item)


def test_the_edge_cases_exercise_both_paths():
    taken = [_fast(item) is not None for item in EDGE_CASES]
    assert sum(taken) >= 15 and taken.count(False) >= 25


_FIELDS = sorted(ingestion.FIELDS) + ["surprise"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what orjson writes
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.uuids().map(str), st.datetimes(timezones=st.none() | st.just(timezone.utc)).map(datetime.isoformat),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
_REQUIRED = {"success": st.booleans(), "execution_time_ms": st.integers(min_value=0, max_value=10**6)}
# Mostly valid required fields, so that the optional ones get judged too; sometimes anything.
_LOGS = st.fixed_dictionaries(
    {name: valid | _VALUES if name == "success" else st.one_of(valid, valid, st.floats(), _VALUES)
     for name, valid in _REQUIRED.items()},
    optional={name: _VALUES for name in _FIELDS if name not in _REQUIRED},
)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=_LOGS)
def test_it_agrees_with_the_validator_on_generated_logs(item):
    _assert_agrees(item)


def test_a_context_nested_too_deep_for_the_decoder_is_still_a_clean_400(api):
    body = b'{"success": true, "execution_time_ms": 1, "context": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = api.generic("POST", "/api/logs/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "Malformed JSON" in response.json()["detail"]


@pytest.mark.django_db
def test_both_paths_store_the_same_log(api, make_case):
    case = make_case()
    sent = {"case_id": str(case.pk), "success": False, "error_type": "Timeout", "error_message": "slow",
            "execution_time_ms": 12.5, "tokens_in": 3, "tokens_out": 4, "cost_usd": 0.5, "model": "m",
            "context": {"step": [1, {"k": None}]}, "created_at": "2026-01-01T10:00:00+02:00"}
    fast_id, slow_id = uuid.uuid4(), uuid.uuid4()
    # An explicit null session_id is fine for both; a null tokens_in only for the validator.
    assert decode_typed(orjson.dumps([{**sent, "id": str(fast_id)}])) is not None
    assert decode_typed(orjson.dumps([{**sent, "id": str(slow_id), "tokens_in": None}])) is None
    for body in ([{**sent, "id": str(fast_id)}], [{**sent, "id": str(slow_id), "tokens_in": 3}]):
        assert api.post("/api/logs/", body, format="json").status_code == 201

    fields = [f.name for f in ExecutionLog._meta.fields if f.name not in ("id", "ingested_at")]
    fast, slow = (ExecutionLog.objects.values(*fields).get(pk=pk) for pk in (fast_id, slow_id))
    assert fast == slow
    assert fast["case_version"] == case.version and fast["execution_time_ms"] == 12


@pytest.mark.django_db
def test_the_fast_path_still_checks_cases_and_repeated_ids(make_case):
    log = {**GOOD, "id": str(uuid.uuid4())}
    with pytest.raises(InvalidInput) as repeated:
        ingestion.parse_payload(decode_typed(orjson.dumps([log, log])))
    assert "Repeats" in repeated.value.errors["1"]["id"]
    with pytest.raises(InvalidInput) as unknown:
        ingestion.parse_payload(decode_typed(orjson.dumps([{**GOOD, "case_id": str(uuid.uuid4())}])))
    assert "No case" in unknown.value.errors["0"]["case_id"]
