"""Sessions and the data-analysis worker over REST: validate, call a service, serialize."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors, services
from agents.analytics import AnalyticsError
from agents.llm import llm_client
from agents.models import Session
from agents.sql_guard import SqlRefused
from agents.workers import NO_LLM_MESSAGE, AgentTask, DataAnalysisAgent
from casebank.apis import actor_of


class SessionOutputSerializer(serializers.ModelSerializer):
    plan = serializers.JSONField()
    results = serializers.JSONField()
    scores = serializers.JSONField()
    errors = serializers.JSONField()
    timings_ms = serializers.JSONField()
    case_id = serializers.UUIDField(allow_null=True)
    created_case_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Session
        fields = [
            "id", "query", "status", "phase", "iteration", "plan", "plan_source", "results", "scores", "errors",
            "answer", "passed", "tokens_in", "tokens_out", "cost_usd", "model", "case_id", "case_version",
            "case_similarity", "created_case_id", "log_id", "timings_ms", "created_at", "started_at", "finished_at",
        ]


class SessionCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        query = serializers.CharField(max_length=services.MAX_QUERY)
        sql = serializers.CharField(max_length=10_000, required=False, allow_blank=True,
                                    help_text="SQL for the data-analysis worker; same guard as Text2SQL.")

    class OutputSerializer(serializers.Serializer):
        session_id = serializers.UUIDField()

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer}, summary="Start a supervisor session")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.session_create(actor=actor_of(request), **data.validated_data)
        return Response({"session_id": session.id}, status=status.HTTP_202_ACCEPTED)


class SessionDetailApi(APIView):
    @extend_schema(responses=SessionOutputSerializer, summary="A session's state, plan, results and scores")
    def get(self, request: Request, session_id: str) -> Response:
        return Response(SessionOutputSerializer(selectors.session_get(session_id)).data)


class DataAnalysisApi(APIView):
    class InputSerializer(serializers.Serializer):
        question = serializers.CharField(max_length=5_000, required=False)
        sql = serializers.CharField(max_length=10_000, required=False)

        def validate(self, attrs: dict) -> dict:
            if bool(attrs.get("question")) == bool(attrs.get("sql")):
                raise serializers.ValidationError({"non_field_errors": ["Give either a question or SQL."]})
            return attrs

    @extend_schema(request=InputSerializer, responses={200: dict},
                   summary="Text2SQL or direct SQL over the analytics database (guarded, read-only)")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sql = data.validated_data.get("sql", "")
        if sql:
            try:
                return Response(DataAnalysisAgent.query(sql))
            except SqlRefused as error:
                return Response({"detail": f"SQL refused: {error}", "errors": {"sql": [str(error)]}}, status=400)
            except AnalyticsError as error:
                return Response({"detail": str(error), "errors": {"sql": [str(error)]}}, status=422)
        if llm_client() is None:
            return Response({"detail": NO_LLM_MESSAGE, "errors": {}}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        output = DataAnalysisAgent().run(AgentTask(query=data.validated_data["question"]))
        if output.ok:
            return Response(output.data)
        if output.error_type in ("LLMError", "LLMUnavailable"):
            return Response({"detail": f"The LLM is unavailable: {output.error}", "errors": {}}, status=503)
        return Response({"detail": output.error, "errors": {"sql": [output.data.get("sql", "")]}}, status=422)


