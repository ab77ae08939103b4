"""`POST /api/agents/data-analysis/`: the guarded Text2SQL worker over REST."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.runtime.llm import llm_client
from agents.tools.analytics import AnalyticsError
from agents.tools.sql_guard import SqlRefused
from agents.tools.workers import NO_LLM_MESSAGE, AgentTask, DataAnalysisAgent
from casebank.access.scopes import Scope


class DataAnalysisApi(APIView):
    # A worker of sessions: the same scope as starting one.
    required_scopes = Scope.SESSIONS

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
            return Response({"detail": NO_LLM_MESSAGE, "errors": {}}, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Caseloop-Expected-Refusal": "no LLM configured"})
        output = DataAnalysisAgent().run(AgentTask(query=data.validated_data["question"]))
        if output.ok:
            return Response(output.data)
        if output.error_type in ("LLMError", "LLMUnavailable"):
            return Response({"detail": f"The LLM is unavailable: {output.error}", "errors": {}}, status=503)
        return Response({"detail": output.error, "errors": {"sql": [output.data.get("sql", "")]}}, status=422)
