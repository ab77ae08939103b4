"""POST /v1/traces: the OTLP/HTTP trace receiver (docs/otlp.md).

Answers in the request's encoding, as the OTLP spec asks: an `ExportTraceServiceResponse`
(with `partial_success` when runs were refused) on success, a `google.rpc.Status` carrying the
message on every 4xx. The JSON form of that Status also carries the API's usual
`{"detail", "errors"}`, so JSON clients of the rest of the API read it the same way.
"""
from __future__ import annotations

import time
from typing import Any

import orjson
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from casebank.access.authentication import ApiKeyAuthentication, BearerApiKeyAuthentication
from casebank.access.permissions import RequiredScopes
from casebank.access.scopes import Scope
from reflection import metrics
from reflection.otlp import decoding
from reflection.otlp.services import traces_ingest

# Headers of an error answer worth keeping when it is re-encoded.
_KEPT_HEADERS = ("WWW-Authenticate", "Retry-After")


class AnyAccept(BaseContentNegotiation):
    """OTLP answers in the request's encoding whatever Accept says; never a 406."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def _media_type(request: Any) -> str:
    """The Content-Type without parameters (`application/json; charset=utf-8` is JSON)."""
    django_request = getattr(request, "_request", request)
    return (getattr(django_request, "content_type", None) or "").lower()


def _wants_protobuf(request: Any) -> bool:
    return _media_type(request) == decoding.PROTOBUF


def _encoded(message: Any, *, protobuf: bool, status: int, extra: dict | None = None) -> HttpResponse:
    if protobuf:
        return HttpResponse(message.SerializeToString(), content_type=decoding.PROTOBUF, status=status)
    body = json_format.MessageToDict(message)
    return HttpResponse(orjson.dumps({**body, **(extra or {})}), content_type=decoding.JSON, status=status)


class OtlpStatusSerializer(serializers.Serializer):
    """google.rpc.Status in its JSON form, with the API's usual error fields."""

    message = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.DictField()  # type: ignore[assignment]  # (as config.schema.ErrorSerializer)


class OtlpExportResponseSerializer(serializers.Serializer):
    """ExportTraceServiceResponse in OTLP/JSON: empty when every run was stored."""

    partialSuccess = serializers.DictField(required=False, help_text="rejectedSpans (int64 as a string), errorMessage")  # noqa: N815


def _both(code: int, description: str) -> dict:
    """One answer in both encodings: protobuf for a protobuf request, JSON otherwise."""
    json_body = OtlpExportResponseSerializer if code == 200 else OtlpStatusSerializer
    return {
        (code, decoding.PROTOBUF): OpenApiResponse(OpenApiTypes.BINARY, description=description),
        (code, decoding.JSON): OpenApiResponse(json_body, description=description),
    }


class TraceExportApi(APIView):
    authentication_classes = [ApiKeyAuthentication, BearerApiKeyAuthentication]
    permission_classes = [IsAuthenticated, RequiredScopes]
    required_scopes = Scope.LOGS_WRITE
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="otlp_traces_export",
        tags=["otlp"],
        summary="OTLP/HTTP trace export: each agent run becomes an execution log (docs/otlp.md)",
        description=(
            "An `ExportTraceServiceRequest` as `application/x-protobuf` or OTLP/JSON (`application/json`, hex ids), "
            "optionally `Content-Encoding: gzip`. Authenticate with `Authorization: Token <key>` or "
            "`Authorization: Bearer <key>`; the key needs the `logs:write` scope. Runs are root spans and "
            "`invoke_agent` spans; re-exporting the same spans stores nothing twice. Answers an "
            "`ExportTraceServiceResponse` in the request's encoding, with `partialSuccess` counting the spans "
            "of refused runs; errors are a `google.rpc.Status` (its JSON form also has `detail` and `errors`)."
        ),
        request={decoding.PROTOBUF: OpenApiTypes.BINARY, decoding.JSON: OpenApiTypes.OBJECT},
        responses={
            **_both(200, "ExportTraceServiceResponse; `partialSuccess` when runs were refused"),
            **_both(400, "Malformed body or too many spans (google.rpc.Status)"),
            **_both(401, "No key, or a wrong or revoked one"),
            **_both(403, "The key lacks the logs:write scope"),
            **_both(413, "Body, or decompressed body, over the limit"),
            **_both(415, "Unsupported Content-Type or Content-Encoding"),
            **_both(429, "Over the key's rate limit"),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        started = time.perf_counter()
        django_request = request._request
        body = decoding.read_body(django_request, content_length=_content_length(django_request.META))
        data = decoding.decompress(body, django_request.headers.get("Content-Encoding", ""))
        export = decoding.parse_request(data, _media_type(request))
        outcome = traces_ingest(request=export, api_key_id=request.auth.pk)
        metrics.record_ingestion(
            created=outcome.created, duplicates=outcome.duplicates, seconds=time.perf_counter() - started
        )
        answer = ExportTraceServiceResponse()
        if outcome.rejected_spans or outcome.error_message:
            answer.partial_success.rejected_spans = outcome.rejected_spans
            answer.partial_success.error_message = outcome.error_message
        return _encoded(answer, protobuf=_wants_protobuf(request), status=200)

    # A plain HttpResponse where DRF's stub says Response: the body is already encoded (DRF
    # renders only Response objects, and passes any other HttpResponse through).
    def handle_exception(self, exc: Exception) -> HttpResponse:  # type: ignore[override]
        # DRF's handling first (auth headers, the project's exception handler), then the
        # answer is re-encoded as the Status OTLP clients expect.
        response = super().handle_exception(exc)
        data = getattr(response, "data", None) or {}
        detail = str(data.get("detail", "")) if isinstance(data, dict) else str(data)
        errors = data.get("errors", {}) if isinstance(data, dict) else {}
        status = Status(message=detail)
        answer = _encoded(
            status, protobuf=_wants_protobuf(self.request), status=response.status_code,
            extra={"detail": detail, "errors": errors},
        )
        for header in _KEPT_HEADERS:
            if response.has_header(header):
                answer[header] = response[header]
        return answer


def _content_length(meta: dict[str, Any]) -> int | None:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0) or None
    except ValueError:
        return None
