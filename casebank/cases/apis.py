"""Case bank REST API: validate input, call a service or selector, serialize the result.

Reading needs the key's `cases:read` scope; every write needs `cases:write` and, on top, the
Django permission the admin asks for the same change (add, change, rollback, restore from the
archive), held by the key's user. A case created by a user who may not review cases waits in
the review queue (pending) and is neither retrieved nor planned with until a reviewer approves
it. Edits, rollbacks and status moves are written to the admin's history like admin edits.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.permissions import require_permission
from casebank.access.scopes import Scope
from casebank.cases import read_cache, selectors, services
from casebank.models import Case, CaseStatus, ReviewState
from casebank.search.ranking import track_record
from core.audit import admin_history_record
from core.pagination import NumberedPagination

ADD_PERMISSION = "casebank.add_case"
CHANGE_PERMISSION = "casebank.change_case"
ROLLBACK_PERMISSION = "casebank.rollback_case"
REVIEW_PERMISSION = "casebank.review_case"


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


class CaseContentInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    query = serializers.CharField(max_length=10_000)
    plan = serializers.JSONField(help_text="Text, or a list of steps each with `agent` or `agents`.")
    category = serializers.CharField(max_length=200, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=30)


class CaseListCreateApi(APIView):
    required_scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}
    # Read by the schema generator only (the view paginates by hand): documents the page envelope.
    pagination_class = NumberedPagination

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
        paginator = NumberedPagination()
        page = paginator.paginate_queryset(cases, request, view=self)
        return paginator.get_paginated_response(CaseOutputSerializer(page, many=True).data)

    @extend_schema(
        request=CaseContentInput, responses={201: CaseOutputSerializer},
        summary="Create a case (pending review unless the key's user may review cases)",
    )
    def post(self, request: Request) -> Response:
        require_permission(request.user, ADD_PERMISSION, "Creating a case")
        data = CaseContentInput(data=request.data)
        data.is_valid(raise_exception=True)
        # Admin's review queue needs review_case: without it a new plan is not reused by anyone yet.
        review_state = ReviewState.APPROVED if request.user.has_perm(REVIEW_PERMISSION) else ReviewState.PENDING
        case = services.case_create(actor=actor_of(request), review_state=review_state, **data.validated_data)
        admin_history_record(user=request.user, obj=case, message=f"Created through the API ({actor_of(request)}), "
                             f"review {case.review_state}.", added=True)
        return Response(CaseOutputSerializer(case).data, status=status.HTTP_201_CREATED)


class CaseDetailApi(APIView):
    required_scopes = {"GET": Scope.CASES_READ, "PUT": Scope.CASES_WRITE, "PATCH": Scope.CASES_WRITE}

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
        require_permission(request.user, CHANGE_PERMISSION, "Editing a case")
        case = selectors.case_get(case_id)
        data = self.UpdateInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        changes: dict[str, Any] = dict(data.validated_data)
        expected_version = changes.pop("version", None)
        before = case.version
        case = services.case_update(
            case=case, actor=actor_of(request), expected_version=expected_version, **changes
        )
        if changes:
            admin_history_record(user=request.user, obj=case, message=(
                f"Changed {', '.join(sorted(changes))} through the API ({actor_of(request)}): v{before} -> v{case.version}."
            ))
        return Response(CaseOutputSerializer(case).data)

    @extend_schema(request=UpdateInput, responses=CaseOutputSerializer, summary="Replace a case's content (version +1)")
    def put(self, request: Request, case_id: str) -> Response:
        return self._update(request, case_id, partial=False)

    @extend_schema(request=UpdateInput, responses=CaseOutputSerializer, summary="Edit a case (version +1 on title/query/plan)")
    def patch(self, request: Request, case_id: str) -> Response:
        return self._update(request, case_id, partial=True)


class CaseStatusApi(APIView):
    required_scopes = Scope.CASES_WRITE

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=CaseStatus.choices)
        reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(
        request=InputSerializer, responses=CaseOutputSerializer,
        summary="Change a case's lifecycle status (out of the archive needs run_consolidation)",
    )
    def patch(self, request: Request, case_id: str) -> Response:
        require_permission(request.user, CHANGE_PERMISSION, "Changing a case's status")
        case = selectors.case_get(case_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        before = case.status
        case = services.case_set_status(
            case=case, actor=actor_of(request), may_restore=request.user.has_perm(services.RESTORE_PERMISSION),
            **data.validated_data,
        )
        if case.status != before:
            admin_history_record(user=request.user, obj=case,
                                 message=f"Status set to {case.status} through the API ({actor_of(request)}).")
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
    required_scopes = Scope.CASES_READ

    @extend_schema(responses=CaseVersionOutputSerializer(many=True), summary="A case's version history, newest first")
    def get(self, request: Request, case_id: str) -> Response:
        case = selectors.case_get(case_id)
        versions = selectors.case_versions(case)
        return Response(CaseVersionOutputSerializer(versions, many=True).data)


class CaseRollbackApi(APIView):
    required_scopes = Scope.CASES_WRITE

    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=1)

    @extend_schema(
        request=InputSerializer, responses=CaseOutputSerializer,
        summary="Roll back to an earlier version (as a new version; needs rollback_case)",
    )
    def post(self, request: Request, case_id: str) -> Response:
        require_permission(request.user, ROLLBACK_PERMISSION, "Rolling a case back")
        case = selectors.case_get(case_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = data.validated_data["version"]
        case = services.case_rollback(case=case, to_version=version, actor=actor_of(request))
        # The admin's rollback page writes the same line (CaseAdmin.rollback_view).
        admin_history_record(user=request.user, obj=case, message=(
            f"Rolled back to v{version} as v{case.version} through the API ({actor_of(request)})."
        ))
        return Response(CaseOutputSerializer(case).data)


class CaseReviewInput(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CaseApproveApi(APIView):
    """The API side of admin's review queue (cases pending review): same permission, same audit."""

    required_scopes = Scope.REVIEW

    @extend_schema(
        request=CaseReviewInput, responses=CaseOutputSerializer,
        summary="Approve a case pending review: from now on it is retrieved and planned with (needs review_case)",
    )
    def post(self, request: Request, case_id: str) -> Response:
        require_permission(request.user, REVIEW_PERMISSION, "Reviewing a case")
        data = CaseReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        note = data.validated_data["note"]
        case = services.case_review_approve(case=selectors.case_get(case_id), actor=actor_of(request), note=note)
        admin_history_record(user=request.user, obj=case, message="Review: approved" + (f": {note}" if note else ""))
        return Response(CaseOutputSerializer(case).data)


class CaseRejectApi(APIView):
    required_scopes = Scope.REVIEW

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(max_length=500, help_text="Why; required.")

    @extend_schema(
        request=InputSerializer, responses=CaseOutputSerializer,
        summary="Reject a case pending review with a note: it is never retrieved (needs review_case)",
    )
    def post(self, request: Request, case_id: str) -> Response:
        require_permission(request.user, REVIEW_PERMISSION, "Reviewing a case")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = data.validated_data["note"]
        case = services.case_review_reject(case=selectors.case_get(case_id), actor=actor_of(request), note=note)
        admin_history_record(user=request.user, obj=case, message=f"Review: rejected: {note}")
        return Response(CaseOutputSerializer(case).data)
