from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db


def _log(case=None, **fields):
    record = {"success": True, "execution_time_ms": 120}
    if case is not None:
        record["case_id"] = str(case.id)
    record.update(fields)
    return record


def test_it_stores_one_log_with_the_cases_current_version(api, make_case):
    case = make_case()
    response = api.post("/api/logs/", _log(case, success=False, error_type="TimeoutError"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["created"] == 1 and body["duplicates"] == 0
    log = ExecutionLog.objects.get(pk=body["ids"][0])
    assert (log.case_id, log.case_version, log.success, log.error_type) == (case.id, 1, False, "TimeoutError")


def test_it_stores_a_batch_with_every_field(api, make_case):
    case = make_case()
    session = uuid.uuid4()
    when = timezone.now() - timedelta(days=2)
    batch = [
        _log(
            case,
            id=str(uuid.uuid4()),
            session_id=str(session),
            success=i % 2 == 0,
            error_message="boom" if i % 2 else "",
            execution_time_ms=100 + i,
            tokens_in=10,
            tokens_out=5,
            cost_usd=0.002,
            model="gpt-x",
            context={"step": i},
            created_at=when.isoformat(),
        )
        for i in range(10)
    ]
    response = api.post("/api/logs/", batch, format="json")
    assert response.status_code == 201
    assert response.json()["created"] == 10
    stored = ExecutionLog.objects.get(pk=batch[3]["id"])
    assert stored.context == {"step": 3}
    assert stored.session_id == session
    assert abs((stored.created_at - when).total_seconds()) < 0.001
    assert stored.cost_usd == pytest.approx(0.002)


def test_it_stores_logs_without_a_case(api):
    response = api.post("/api/logs/", [_log(), _log(success=False)], format="json")
    assert response.status_code == 201
    assert ExecutionLog.objects.filter(case__isnull=True).count() == 2


def test_resending_the_same_ids_never_duplicates(api, make_case):
    case = make_case()
    batch = [_log(case, id=str(uuid.uuid4())) for _ in range(5)]
    first = api.post("/api/logs/", batch, format="json").json()
    second = api.post("/api/logs/", batch + [_log(case, id=str(uuid.uuid4()))], format="json").json()
    assert first["created"] == 5
    assert (second["created"], second["duplicates"]) == (1, 5)
    assert ExecutionLog.objects.count() == 6


@pytest.mark.parametrize(
    "record, field",
    [
        ({"execution_time_ms": 5}, "success"),
        ({"success": "yes", "execution_time_ms": 5}, "success"),
        ({"success": True}, "execution_time_ms"),
        ({"success": True, "execution_time_ms": "fast"}, "execution_time_ms"),
        ({"success": True, "execution_time_ms": -1}, "execution_time_ms"),
        ({"success": True, "execution_time_ms": 5, "id": "nope"}, "id"),
        ({"success": True, "execution_time_ms": 5, "case_id": 42}, "case_id"),
        ({"success": True, "execution_time_ms": 5, "tokens_in": 1.5}, "tokens_in"),
        ({"success": True, "execution_time_ms": 5, "cost_usd": -2}, "cost_usd"),
        ({"success": True, "execution_time_ms": 5, "context": [1]}, "context"),
        ({"success": True, "execution_time_ms": 5, "created_at": "yesterday"}, "created_at"),
        ({"success": True, "execution_time_ms": 5, "created_at": "2999-01-01T00:00:00Z"}, "created_at"),
        ({"success": True, "execution_time_ms": 5, "error_type": "x" * 101}, "error_type"),
        ({"success": True, "execution_time_ms": 5, "sucess": True}, "non_field_errors"),
    ],
)
def test_it_rejects_a_bad_log_and_stores_nothing_of_the_batch(api, make_case, record, field):
    case = make_case()
    batch = [_log(case), record, _log(case)]
    response = api.post("/api/logs/", batch, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "nothing was stored" in body["detail"]
    assert field in body["errors"]["1"]
    assert ExecutionLog.objects.count() == 0


def test_it_rejects_an_unknown_case(api):
    response = api.post("/api/logs/", [_log(), {**_log(), "case_id": str(uuid.uuid4())}], format="json")
    assert response.status_code == 400
    assert "No case" in response.json()["errors"]["1"]["case_id"]
    assert ExecutionLog.objects.count() == 0


def test_it_rejects_a_version_the_case_never_had(api, make_case):
    case = make_case()
    response = api.post("/api/logs/", _log(case, case_version=7), format="json")
    assert response.status_code == 400
    assert "case_version" in response.json()["errors"]["0"]


def test_it_rejects_ids_repeated_within_a_batch(api):
    same = str(uuid.uuid4())
    response = api.post("/api/logs/", [_log(id=same), _log(id=same)], format="json")
    assert response.status_code == 400
    assert "Repeats" in response.json()["errors"]["1"]["id"]
    assert ExecutionLog.objects.count() == 0


def test_it_rejects_an_oversized_batch(api):
    response = api.post("/api/logs/", [_log() for _ in range(1001)], format="json")
    assert response.status_code == 400
    assert "at most 1000" in response.json()["detail"]
    assert ExecutionLog.objects.count() == 0


def test_it_rejects_an_empty_batch_and_non_objects(api):
    assert api.post("/api/logs/", [], format="json").status_code == 400
    response = api.post("/api/logs/", [1, "two"], format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"0", "1"}


def test_it_rejects_malformed_json(api):
    response = api.post("/api/logs/", data="[{", content_type="application/json")
    assert response.status_code == 400
    assert "Malformed JSON" in response.json()["detail"]


def test_it_needs_a_key(anonymous_api):
    assert anonymous_api.post("/api/logs/", _log(), format="json").status_code == 401


def test_it_lists_logs_with_filters_and_a_cursor(api, make_case):
    case = make_case()
    now = timezone.now()
    batch = [
        _log(case, success=i % 3 != 0, error_type="" if i % 3 else "ValueError",
             created_at=(now - timedelta(hours=i)).isoformat())
        for i in range(30)
    ]
    api.post("/api/logs/", batch, format="json")
    failures = api.get(f"/api/logs/?case={case.id}&success=false").json()
    assert len(failures["results"]) == 10
    assert all(not log["success"] for log in failures["results"])
    assert api.get("/api/logs/?error_type=ValueError").json()["results"][0]["error_type"] == "ValueError"

    page = api.get("/api/logs/?page_size=12").json()
    seen = [log["id"] for log in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [log["id"] for log in page["results"]]
    assert len(seen) == len(set(seen)) == 30

    since = (now - timedelta(hours=4, minutes=30)).isoformat()
    recent = api.get("/api/logs/", {"created_after": since}).json()["results"]
    assert len(recent) == 5


def test_it_rejects_bad_filters(api):
    assert api.get("/api/logs/?case=nope").status_code == 400
    assert api.get("/api/logs/?created_after=soon").status_code == 400
