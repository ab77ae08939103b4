"""The log list's hand-written representation says exactly what DRF's ModelSerializer would."""
from __future__ import annotations

import uuid
from datetime import datetime
from datetime import timezone as dt_timezone

import pytest
from rest_framework import serializers

from reflection.logs.apis import LogOutputSerializer
from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db


class DrfReference(serializers.ModelSerializer):
    case_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = ExecutionLog
        fields = LogOutputSerializer.Meta.fields


def test_it_matches_drf_for_a_full_and_a_sparse_log(make_case):
    case = make_case()
    full = ExecutionLog.objects.create(
        case_id=case.pk, case_version=1, session_id=uuid.uuid4(), success=False, error_type="Timeout",
        error_message="timed out after 30 s", execution_time_ms=5012, tokens_in=812, tokens_out=96,
        cost_usd=0.0123, model="gpt-4o-mini", context={"user": "ana", "rows": [1, 2]},
        created_at=datetime(2026, 6, 15, 12, 0, 0, 123456, tzinfo=dt_timezone.utc),
    )
    sparse = ExecutionLog.objects.create(success=True, execution_time_ms=7)
    logs = list(ExecutionLog.objects.filter(pk__in=[full.pk, sparse.pk]).order_by("-created_at"))

    ours = LogOutputSerializer(logs, many=True).data
    reference = DrfReference(logs, many=True).data
    assert [dict(item) for item in ours] == [dict(item) for item in reference]
    assert any(item["created_at"].endswith("Z") for item in ours)


def test_the_api_lists_what_drf_would(api, make_case):
    case = make_case()
    ExecutionLog.objects.create(case_id=case.pk, case_version=1, success=True, execution_time_ms=40, cost_usd=1)
    body = api.get("/api/logs/", {"case": str(case.pk)}).json()
    reference = DrfReference(ExecutionLog.objects.filter(case_id=case.pk), many=True).data
    assert body["results"] == [dict(item) for item in reference]
