"""Execution-log API: batch ingestion and a filtered, cursor-paginated list."""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.scopes import Scope
from casebank.models import ApiKey
from core.parsers import OrjsonParser, json_loads
from core.renderers import OrjsonRenderer
from reflection import metrics
from reflection.logs import selectors
from reflection.logs import services as ingestion
from reflection.logs.decoding import decode_typed
from reflection.models import ExecutionLog


class LogSchemaSerializer(serializers.Serializer):
    """The shape of one log, for the schema; validation itself is `reflection.logs.services`."""

    id = serializers.UUIDField(required=False, help_text="Re-sending the same id never duplicates the log.")
    case_id = serializers.UUIDField(required=False, allow_null=True)
    case_version = serializers.IntegerField(required=False, min_value=1, help_text="Defaults to the case's current version.")
    session_id = serializers.UUIDField(required=False, allow_null=True)
    success = serializers.BooleanField()
    error_type = serializers.CharField(required=False, max_length=100)
    error_message = serializers.CharField(required=False, max_length=ingestion.MAX_ERROR_MESSAGE)
    execution_time_ms = serializers.FloatField(min_value=0)
    tokens_in = serializers.IntegerField(required=False, min_value=0)
    tokens_out = serializers.IntegerField(required=False, min_value=0)
    cost_usd = serializers.FloatField(required=False, min_value=0)
    model = serializers.CharField(required=False, max_length=100)
    # SerializerMetaclass moves declared fields off the class, so this does not shadow
    # Serializer.context; the stub cannot know that.
    context = serializers.DictField(required=False)  # type: ignore[assignment]
    created_at = serializers.DateTimeField(required=False, help_text="When the run happened; defaults to now.")


class LogOutputSerializer(serializers.ModelSerializer):
    case_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = ExecutionLog
        fields = [
            "id",
            "case_id",
            "case_version",
            "session_id",
            "success",
            "error_type",
            "error_message",
            "execution_time_ms",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "model",
            "context",
            "created_at",
            "ingested_at",
        ]

    def to_representation(self, log: ExecutionLog) -> dict[str, Any]:
        # Field by field through DRF cost ~0.1 ms per log, most of a log page's time; this is
        # the same output (tests/reflection/logs/test_log_list_output.py holds it to DRF's).
        return {
            "id": str(log.id),
            "case_id": str(log.case_id) if log.case_id is not None else None,
            "case_version": log.case_version,
            "session_id": str(log.session_id) if log.session_id is not None else None,
            "success": log.success,
            "error_type": log.error_type,
            "error_message": log.error_message,
            "execution_time_ms": log.execution_time_ms,
            "tokens_in": log.tokens_in,
            "tokens_out": log.tokens_out,
            "cost_usd": float(log.cost_usd),
            "model": log.model,
            "context": log.context,
            "created_at": _DATETIME.to_representation(log.created_at),
            "ingested_at": _DATETIME.to_representation(log.ingested_at),
        }


_DATETIME = serializers.DateTimeField()


class IngestOutputSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.UUIDField())
    created = serializers.IntegerField(help_text="Logs stored by this request.")
    duplicates = serializers.IntegerField(help_text="Logs whose id was already stored (not stored again).")


class LogCursorPagination(CursorPagination):
    # Many logs share a created_at (one batch, one timestamp): without the id the order of ties
    # is arbitrary on PostgreSQL and pages skip and repeat logs (log_created_id_idx serves it).
    ordering = ("-created_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class LogBatchParser(OrjsonParser):
    """Decodes an ingestion body straight into typed logs when it is plainly valid (the fast
    path, `reflection.logs.decoding`); anything else is parsed as plain JSON for the validator."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        body = stream.read()
        return decode_typed(body) or json_loads(body)


class LogListCreateApi(APIView):
    """Logs are sent with `logs:write` and belong to the sending key. Reading needs `cases:read`
    and shows the key's own logs (those it sent and those of its sessions); a key with the
    `reflection` scope whose user may view logs in admin reads every key's."""

    required_scopes = {"GET": Scope.CASES_READ, "POST": Scope.LOGS_WRITE}
    # Read by the schema generator only (the view paginates by hand): documents the page envelope.
    pagination_class = LogCursorPagination
    parser_classes = [LogBatchParser]
    renderer_classes = [OrjsonRenderer]

    class FilterSerializer(serializers.Serializer):
        case = serializers.UUIDField(required=False)
        success = serializers.BooleanField(required=False, allow_null=True, default=None)
        error_type = serializers.CharField(required=False, max_length=100)
        session = serializers.UUIDField(required=False)
        created_after = serializers.DateTimeField(required=False)
        created_before = serializers.DateTimeField(required=False)

    @extend_schema(
        request=LogSchemaSerializer(many=True),
        responses={201: IngestOutputSerializer},
        summary="Store one log or a batch of up to 1,000 (all validated before any is written)",
        examples=[
            OpenApiExample(
                "One failed run",
                value={
                    "case_id": "3f1c2a9e-0000-4000-8000-000000000001",
                    "success": False,
                    "error_type": "TimeoutError",
                    "error_message": "SQL query exceeded 5000 ms",
                    "execution_time_ms": 5012,
                    "tokens_in": 812,
                    "tokens_out": 96,
                    "model": "gpt-4o-mini",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        started = time.perf_counter()
        records = ingestion.parse_payload(request.data)
        result = ingestion.logs_ingest(records=records, api_key_id=_key(request).pk)
        metrics.record_ingestion(
            created=result.created, duplicates=result.duplicates, seconds=time.perf_counter() - started
        )
        return Response(
            {"ids": result.ids, "created": result.created, "duplicates": result.duplicates},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses=LogOutputSerializer(many=True),
        summary="List the key's logs (all logs for a reviewer's key), newest first; filter by case, success, "
                "error type, session, time range",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        logs = selectors.log_list(owner=selectors.log_owner_filter(api_key=_key(request)), **filters.validated_data)
        paginator = LogCursorPagination()
        page = paginator.paginate_queryset(logs, request, view=self)
        return paginator.get_paginated_response(LogOutputSerializer(page, many=True).data)


def _key(request: Request) -> ApiKey:
    # Only ApiKeyAuthentication authenticates this view, so an authenticated request has a key.
    assert isinstance(request.auth, ApiKey)
    return request.auth
