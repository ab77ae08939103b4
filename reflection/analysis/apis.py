"""Reflection API: analyse one case now, read its stored analyses, start a batch run, read a run."""
from __future__ import annotations

from uuid import UUID

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.scopes import Scope
from casebank.cases.apis import actor_of
from casebank.models import Case
from core.errors import NotFound
from reflection.analysis import engine, selectors, services
from reflection.models import ReflectionRun, ReflectionTrigger


class LatencySerializer(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True)
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class TemplateSerializer(serializers.Serializer):
    template = serializers.CharField()
    count = serializers.IntegerField()


class ErrorGroupSerializer(serializers.Serializer):
    error_type = serializers.CharField()
    count = serializers.IntegerField()
    percentage = serializers.FloatField(help_text="Of all executions in the window, 0..100.")
    example = serializers.CharField()
    templates = TemplateSerializer(many=True)


class VersionFiguresSerializer(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True, help_text="Null: runs stored without a version.")
    runs = serializers.IntegerField(help_text="Runs of this version in the window.")
    successes = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    current = serializers.BooleanField(help_text="The version the case serves now, which the figures describe.")


class AnalysisOutputSerializer(serializers.Serializer):
    case_id = serializers.UUIDField()
    window_days = serializers.IntegerField()
    # Absent from analyses stored before analyses were per version (issue #15), which pooled all.
    case_version = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="The case version whose runs every figure below counts (the current one when analysed).",
    )
    total_executions = serializers.IntegerField()
    successes = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    weighted_success_rate = serializers.FloatField(allow_null=True)
    # Absent from analyses stored before they existed.
    reuse_helped = serializers.FloatField(required=False, help_text="Successful runs, time-decayed (half-life REFLECTION_HALF_LIFE_DAYS).")
    reuse_harmed = serializers.FloatField(required=False, help_text="Failed runs, time-decayed.")
    common_errors = ErrorGroupSerializer(many=True)
    latency_ms = LatencySerializer()
    slow = serializers.BooleanField()
    anomalies = serializers.ListField(child=serializers.DictField())
    confidence = serializers.ChoiceField(choices=["ok", "insufficient"])
    versions = VersionFiguresSerializer(
        many=True, required=False,
        help_text="Runs and success rate of the newest versions (at most 5, the current one always), newest first, "
                  "for comparison: an experiment's candidate and earlier versions are listed here, not counted above.",
    )


class AnalyzeApi(APIView):
    required_scopes = Scope.REFLECTION

    class InputSerializer(serializers.Serializer):
        case_id = serializers.UUIDField()
        window_days = serializers.IntegerField(
            required=False, default=30, min_value=engine.MIN_WINDOW_DAYS, max_value=engine.MAX_WINDOW_DAYS
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: AnalysisOutputSerializer},
        summary="Analyse one case now (stored as history; updates its success rate and warning flag)",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        record = services.case_analysis_record(**data.validated_data)
        return Response(record.result)


class AnalysisPointSerializer(serializers.Serializer):
    analysed_at = serializers.DateTimeField()
    window_days = serializers.IntegerField()
    total_executions = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    weighted_success_rate = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)


class SuggestionRefusalSerializer(serializers.Serializer):
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class CaseAnalysisApi(APIView):
    """What dashboards read: the stored analyses, never a new computation (that is POST analyze)."""

    required_scopes = Scope.REFLECTION

    class FilterSerializer(serializers.Serializer):
        history = serializers.IntegerField(
            required=False, default=30, min_value=0, max_value=365,
            help_text="How many earlier analyses to list for a trend chart (0..365).",
        )

    class OutputSerializer(serializers.Serializer):
        case_id = serializers.UUIDField()
        analysed_at = serializers.DateTimeField(allow_null=True, help_text="Null when never analysed.")
        analysis = AnalysisOutputSerializer(allow_null=True, help_text="The latest analysis, as POST analyze returned it.")
        history = AnalysisPointSerializer(many=True, help_text="Newest first, the latest included.")
        suggestion_refused = SuggestionRefusalSerializer(
            allow_null=True,
            help_text="Why the latest proposal for the case was refused (it repeated a change already in the plan, "
                      "rejected or rolled back), since the last suggestion made; null if none.",
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer},
        summary="The latest stored analysis of a case and its trend (no new computation)",
    )
    def get(self, request: Request, case_id: UUID) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        if not Case.objects.filter(pk=case_id).exists():
            raise NotFound(f"No case with id {case_id}.")
        latest = selectors.case_analysis_latest(case_id=case_id)
        limit = filters.validated_data["history"]
        trend = selectors.case_analysis_trend(case_id=case_id, limit=limit) if latest and limit else []
        return Response({
            "case_id": case_id,
            "analysed_at": latest.created_at if latest else None,
            "analysis": latest.result if latest else None,
            "history": AnalysisPointSerializer(trend, many=True).data,
            "suggestion_refused": selectors.case_suggestion_refusal(case_id=case_id),
        })


class RunOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReflectionRun
        fields = [
            "id", "status", "trigger", "requested_by", "case_ids", "window_days", "snapshot_at", "since",
            "cases_total", "cases_analysed", "cases_skipped", "cases_failed", "warnings_set",
            "warnings_cleared", "error", "created_at", "started_at", "finished_at", "duration_ms",
        ]


class BatchStartApi(APIView):
    required_scopes = Scope.REFLECTION

    class InputSerializer(serializers.Serializer):
        case_ids = serializers.ListField(
            child=serializers.UUIDField(), required=False, default=list, max_length=10_000,
            help_text="Only these cases; by default every case with new logs since the last run.",
        )
        window_days = serializers.IntegerField(
            required=False, default=30, min_value=engine.MIN_WINDOW_DAYS, max_value=engine.MAX_WINDOW_DAYS
        )

    class OutputSerializer(serializers.Serializer):
        run_id = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer,
        responses={202: OutputSerializer},
        summary="Start a reflection run in the task queue",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.reflection_run_start(
            trigger=ReflectionTrigger.API, requested_by=actor_of(request), **data.validated_data
        )
        return Response({"run_id": run.pk}, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    required_scopes = Scope.REFLECTION

    @extend_schema(responses={200: RunOutputSerializer}, summary="A reflection run: status, counts, duration")
    def get(self, request: Request, run_id: int) -> Response:
        # Ids past a bigint would make the database raise rather than find nothing.
        run = ReflectionRun.objects.filter(pk=run_id).first() if run_id < 2**63 else None
        if run is None:
            raise NotFound(f"No reflection run with id {run_id}.")
        return Response(RunOutputSerializer(run).data)
