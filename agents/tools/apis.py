"""The agents over REST: `POST /api/agents/data-analysis/` (guarded Text2SQL) and
`POST /api/agents/vision/` (questions about images)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.runtime.llm import LLMError, llm_client
from agents.sessions.apis import api_key_of
from agents.tools.analytics import AnalyticsError
from agents.tools.concurrency import AnalyticsBusy, retry_after_s
from agents.tools.serializers import clean_images, images_field
from agents.tools.sql_guard import SqlRefused
from agents.tools.vision import NO_LLM_MESSAGE as VISION_NO_LLM_MESSAGE
from agents.tools.vision import Image, vision_answer, vision_available
from agents.tools.workers import NO_LLM_MESSAGE, AgentTask, DataAnalysisAgent
from casebank.access.scopes import Scope


def busy_response(error: AnalyticsBusy) -> Response:
    return Response({"detail": str(error), "errors": {}}, status=status.HTTP_429_TOO_MANY_REQUESTS,
                    headers={"Retry-After": str(error.retry_after)})


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

    @extend_schema(request=InputSerializer,
                   responses={200: dict, 429: OpenApiResponse(description="Over the analytics concurrency limit "
                                                                          "of the key or of all keys; see Retry-After")},
                   summary="Text2SQL or direct SQL over the analytics database (guarded, read-only)")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = api_key_of(request)
        key_id = key.pk if key is not None else None
        sql = data.validated_data.get("sql", "")
        if sql:
            try:
                # No waiting for a slot in a web worker: over the limit answers 429 at once.
                return Response(DataAnalysisAgent.query(sql, key_id=key_id, wait_s=0.0))
            except AnalyticsBusy as error:
                return busy_response(error)
            except SqlRefused as error:
                return Response({"detail": f"SQL refused: {error}", "errors": {"sql": [str(error)]}}, status=400)
            except AnalyticsError as error:
                return Response({"detail": str(error), "errors": {"sql": [str(error)]}}, status=422)
        if llm_client() is None:
            return Response({"detail": NO_LLM_MESSAGE, "errors": {}}, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Caseloop-Expected-Refusal": "no LLM configured"})
        task = AgentTask(query=data.validated_data["question"], api_key_id=key_id, slot_wait_s=0.0)
        output = DataAnalysisAgent().run(task)
        if output.ok:
            return Response(output.data)
        if output.error_type == "AnalyticsBusy":
            return busy_response(AnalyticsBusy(output.error, retry_after=retry_after_s()))
        if output.error_type in ("LLMError", "LLMUnavailable"):
            return Response({"detail": f"The LLM is unavailable: {output.error}", "errors": {}}, status=503)
        return Response({"detail": output.error, "errors": {"sql": [output.data.get("sql", "")]}}, status=422)



class VisionApi(APIView):
    required_scopes = Scope.SESSIONS  # an agent worker, like data analysis
    class InputSerializer(serializers.Serializer):
        question = serializers.CharField(max_length=5_000)
        images = images_field(required=True)

        def validate_images(self, value: list[dict]) -> list[Image]:
            return clean_images(value)

    class OutputSerializer(serializers.Serializer):
        class ImageRefSerializer(serializers.Serializer):
            sha256 = serializers.CharField()
            bytes = serializers.IntegerField()
            media_type = serializers.CharField()

        answer = serializers.CharField()
        images = ImageRefSerializer(many=True)
        tokens_in = serializers.IntegerField()
        tokens_out = serializers.IntegerField()
        cost_usd = serializers.FloatField()
        model = serializers.CharField()

    @extend_schema(request=InputSerializer,
                   responses={200: OutputSerializer,
                              503: OpenApiResponse(description="No LLM configured, or it could not answer")},
                   summary="Ask the vision model about images (base64 PNG/JPEG/WebP; never stored)")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not vision_available():
            return Response({"detail": VISION_NO_LLM_MESSAGE, "errors": {}}, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers={"Caseloop-Expected-Refusal": "no LLM configured"})
        try:
            answer = vision_answer(question=data.validated_data["question"], images=data.validated_data["images"])
        except LLMError as error:
            return Response({"detail": f"The vision model could not answer: {error}", "errors": {}},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(self.OutputSerializer(answer.as_dict()).data)
