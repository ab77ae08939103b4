"""Case bank REST API: validate input, call a service or selector, serialize the result."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.cases import read_cache, selectors, services
from casebank.models import Case, CaseStatus, ReviewState
from casebank.search.ranking import track_record


def actor_of(request: Request) -> str:
    """Who did it, for audit rows: the API key's name, or the logged-in user."""
    api_key = getattr(request, "auth", None)
    if api_key is not None and hasattr(api_key, "name"):
        return f"api:{api_key.name}"
    return getattr(request.user, "username", "") or "anonymous"


class CaseOutputSerializer(serializers.ModelSerializer):
    plan = serializers.JSONField()
    tags = serializers.ListField(child=serializers.CharField())
    reuse_value = serializers.SerializerMethodField(
        help_text="Posterior chance that a run of the plan succeeds, from the time-decayed "
                  "`reuse_helped` / `reuse_harmed` runs (casebank.search.ranking.track_record)."
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "title",
            "query",
            "plan",
            "category",
            "tags",
            "status",
            "review_state",
            "version",
            "success_rate",
            "run_count",
            "reuse_helped",
            "reuse_harmed",
            "reuse_value",
            "usage_count",
            "last_used_at",
            "created_at",
            "updated_at",
            "updated_by",
        ]

    def get_reuse_value(self, case: Case) -> float:
        return round(track_record(case.reuse_helped, case.reuse_harmed), 4)


class CasePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class CaseContentInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    query = serializers.CharField(max_length=10_000)
    plan = serializers.JSONField(help_text="Text, or a list of steps each with `agent` or `agents`.")
    category = serializers.CharField(max_length=200, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=30)


class CaseListCreateApi(APIView):
    # Read by the schema generator only (the view paginates by hand): documents the page envelope.
    pagination_class = CasePagination

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=CaseStatus.choices, required=False)
        review_state = serializers.ChoiceField(
            choices=ReviewState.choices, required=False, help_text="`pending`: the review queue of new cases."
        )
        category = serializers.CharField(max_length=200, required=False)
        sort = serializers.ChoiceField(
            choices=list(selectors.CASE_SORTS), required=False, default="updated",
            help_text="Largest or newest first; a leading `-` reverses. Cases never analysed (`success`) or never used "
                      "(`last_used`) come last either way.",
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses=CaseOutputSerializer(many=True),
        summary="List cases (filter by status, review state and category; sort by usage, success or last use)",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        cases = selectors.case_list(**filters.validated_data)
        paginator = CasePagination()
        page = paginator.paginate_queryset(cases, request, view=self)
        return paginator.get_paginated_response(CaseOutputSerializer(page, many=True).data)

    @extend_schema(request=CaseContentInput, responses={201: CaseOutputSerializer}, summary="Create a case")
    def post(self, request: Request) -> Response:
        data = CaseContentInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = services.case_create(actor=actor_of(request), **data.validated_data)
        return Response(CaseOutputSerializer(case).data, status=status.HTTP_201_CREATED)


class CaseDetailApi(APIView):
    class UpdateInput(CaseContentInput):
        version = serializers.IntegerField(
            required=False, min_value=1, help_text="If given, the edit applies only at this version (else 409)."
        )

    @extend_schema(responses=CaseOutputSerializer, summary="Get a case")
    def get(self, request: Request, case_id: str) -> Response:
        case = read_cache.cached_read(
            "case", str(case_id), lambda: dict(CaseOutputSerializer(selectors.case_get(case_id)).data)
        )
        return Response(case)

    def _update(self, request: Request, case_id: str, *, partial: bool) -> Response:
        case = selectors.case_get(case_id)
        data = self.UpdateInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        changes: dict[str, Any] = dict(data.validated_data)
        expected_version = changes.pop("version", None)
        case = services.case_update(
            case=case, actor=actor_of(request), expected_version=expected_version, **changes
        )
        return Response(CaseOutputSerializer(case).data)

    @extend_schema(request=UpdateInput, responses=CaseOutputSerializer, summary="Replace a case's content (version +1)")
    def put(self, request: Request, case_id: str) -> Response:
        return self._update(request, case_id, partial=False)

    @extend_schema(request=UpdateInput, responses=CaseOutputSerializer, summary="Edit a case (version +1 on title/query/plan)")
    def patch(self, request: Request, case_id: str) -> Response:
        return self._update(request, case_id, partial=True)


class CaseStatusApi(APIView):
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=CaseStatus.choices)
        reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=CaseOutputSerializer, summary="Change a case's lifecycle status")
    def patch(self, request: Request, case_id: str) -> Response:
        case = selectors.case_get(case_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case = services.case_set_status(case=case, actor=actor_of(request), **data.validated_data)
        return Response(CaseOutputSerializer(case).data)


class CaseVersionOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    title = serializers.CharField()
    query = serializers.CharField()
    plan = serializers.JSONField()
    category = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    author = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class CaseVersionsApi(APIView):
    @extend_schema(responses=CaseVersionOutputSerializer(many=True), summary="A case's version history, newest first")
    def get(self, request: Request, case_id: str) -> Response:
        case = selectors.case_get(case_id)
        versions = selectors.case_versions(case)
        return Response(CaseVersionOutputSerializer(versions, many=True).data)


class CaseRollbackApi(APIView):
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=1)

    @extend_schema(request=InputSerializer, responses=CaseOutputSerializer, summary="Roll back to an earlier version (as a new version)")
    def post(self, request: Request, case_id: str) -> Response:
        case = selectors.case_get(case_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case = services.case_rollback(case=case, to_version=data.validated_data["version"], actor=actor_of(request))
        return Response(CaseOutputSerializer(case).data)
