"""Sessions and the data-analysis worker over REST: validate, call a service, serialize."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Session
from agents.sessions import selectors, services
from casebank.cases.apis import actor_of


class SessionOutputSerializer(serializers.ModelSerializer):
    plan = serializers.JSONField()
    results = serializers.JSONField()
    scores = serializers.JSONField()
    # SerializerMetaclass moves declared fields off the class, so this does not shadow
    # Serializer.errors; the stub cannot know that.
    errors = serializers.JSONField()  # type: ignore[assignment]
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
