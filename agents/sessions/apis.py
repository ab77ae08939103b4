"""Sessions and the data-analysis worker over REST: validate, call a service, serialize."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Session, SessionStatus
from agents.sessions import selectors, services
from agents.tools.serializers import clean_images, images_field
from agents.tools.vision import Image
from casebank.access.scopes import Scope
from casebank.cases.apis import actor_of
from casebank.models import ApiKey


class SessionOutputSerializer(serializers.ModelSerializer):
    plan = serializers.JSONField()
    results = serializers.JSONField()
    scores = serializers.JSONField()
    # SerializerMetaclass moves declared fields off the class, so this does not shadow
    # Serializer.errors; the stub cannot know that.
    errors = serializers.JSONField()  # type: ignore[assignment]
    timings_ms = serializers.JSONField()
    images = serializers.ListField(child=serializers.DictField(), read_only=True,
                                   help_text="sha256, bytes and media_type of each image given; never the image")
    case_id = serializers.UUIDField(allow_null=True)
    created_case_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Session
        fields = [
            "id", "query", "images", "status", "phase", "iteration", "plan", "plan_source", "results", "scores", "errors",
            "answer", "passed", "tokens_in", "tokens_out", "cost_usd", "model", "case_id", "case_version",
            "case_similarity", "created_case_id", "log_id", "timings_ms", "created_at", "started_at", "finished_at",
        ]


def api_key_of(request: Request) -> ApiKey | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


class SessionCursorPagination(CursorPagination):
    # Sessions posted together share a created_at to the microsecond on fast machines: the id
    # breaks ties, or pages would skip and repeat them.
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class SessionListOutputSerializer(serializers.ModelSerializer):
    errors = serializers.JSONField()  # type: ignore[assignment]  # a field named like Serializer.errors
    scores = serializers.JSONField()
    case_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Session
        fields = ["id", "query", "status", "phase", "iteration", "plan_source", "passed", "answer", "scores", "errors",
                  "case_id", "created_at", "started_at", "finished_at"]


class SessionListCreateApi(APIView):
    required_scopes = Scope.SESSIONS
    # Read by the schema generator only (the view paginates by hand): documents the page envelope.
    pagination_class = SessionCursorPagination

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
        created_after = serializers.DateTimeField(required=False)
        created_before = serializers.DateTimeField(required=False)

    class InputSerializer(serializers.Serializer):
        query = serializers.CharField(max_length=services.MAX_QUERY)
        sql = serializers.CharField(max_length=10_000, required=False, allow_blank=True,
                                    help_text="SQL for the data-analysis worker; same guard as Text2SQL.")
        images = images_field(required=False)

        def validate_images(self, value: list[dict]) -> list[Image]:
            return clean_images(value)

    class OutputSerializer(serializers.Serializer):
        session_id = serializers.UUIDField()

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer}, summary="Start a supervisor session",
                   description="Queued for a runner; its events stream from `/api/sessions/{id}/stream`. A key "
                               "may have a number of sessions queued or running at once by tier "
                               "(`AGENTS_SESSIONS_PER_KEY_*`: standard 20, premium 200); past it the post is "
                               "refused with 429 and `{\"detail\", \"errors\": {\"sessions\": [...]}}`.")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.session_create(actor=actor_of(request), api_key=api_key_of(request), **data.validated_data)
        return Response({"session_id": session.id}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[FilterSerializer], responses=SessionListOutputSerializer(many=True),
                   summary="The caller's own sessions, newest first (filter by status and time range)")
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        sessions = selectors.session_list(api_key=api_key_of(request), **filters.validated_data)
        paginator = SessionCursorPagination()
        page = paginator.paginate_queryset(sessions, request, view=self)
        return paginator.get_paginated_response(SessionListOutputSerializer(page, many=True).data)


class SessionDetailApi(APIView):
    required_scopes = Scope.SESSIONS

    @extend_schema(responses=SessionOutputSerializer, summary="A session's state, plan, results and scores")
    def get(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get(session_id, api_key=api_key_of(request))
        return Response(SessionOutputSerializer(session).data)
