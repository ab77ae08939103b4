"""Suggestions API: the review queue, approve, reject, rollback and on-demand generation.

API keys act as their user: reading needs the key's `reflection` scope and the user's
`reflection.view_suggestion` (or the approve permission); every decision needs the `review`
scope and `reflection.approve_suggestion`; asking for a suggestion now needs `reflection` and
the approve permission; 403 otherwise.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.permissions import RequiredScopes
from casebank.access.scopes import Scope
from core.errors import Conflict
from core.pagination import NumberedPagination
from reflection.models import Experiment, ExperimentStatus, Suggestion, SuggestionStatus
from reflection.suggestions import selectors, services
from reflection.suggestions.generation import suggestion_generate_explained

APPROVE = "reflection.approve_suggestion"


class CanReview(permissions.BasePermission):
    message = "You need the reflection.view_suggestion or reflection.approve_suggestion permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and (user.has_perm(APPROVE) or user.has_perm("reflection.view_suggestion")))


class CanApprove(permissions.BasePermission):
    message = "You need the reflection.approve_suggestion permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.has_perm(APPROVE))


class ExperimentOutputSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=ExperimentStatus.choices)
    detail = serializers.JSONField(help_text="The last look: both arms' runs and rates, likelihood ratio, p-value, interval.")

    class Meta:
        model = Experiment
        fields = ["id", "status", "base_version", "candidate_version", "candidate_share", "started_at", "decided_at",
                  "decided_by", "decision_note", "flagged", "detail"]


class SuggestionOutputSerializer(serializers.ModelSerializer):
    case_id = serializers.UUIDField()
    reviewed_by = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()
    experiment = serializers.SerializerMethodField()

    class Meta:
        model = Suggestion
        fields = [
            "id",
            "case_id",
            "base_version",
            "status",
            "source",
            "rationale",
            "changes",
            "current_plan",
            "revised_plan",
            "expected_effect",
            "confidence",
            "model",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "fallback_reason",
            "stale_reason",
            "applied_version",
            "rolled_back_version",
            "created_at",
            "reviewed_by",
            "reviewed_at",
            "review_note",
            "verification",
            "experiment",
        ]

    def get_reviewed_by(self, suggestion: Suggestion) -> str | None:
        return suggestion.reviewed_by.get_username() if suggestion.reviewed_by else None

    def get_verification(self, suggestion: Suggestion) -> dict | None:
        """`{status: pending|improved|no_change|regressed, ...}`: the experiment's last look (`current`,
        `candidate`, `likelihood_ratio`, `p_value`, `interval`), or with experiments off the before/after
        test (`before`, `after`, `z`, `p_value`, `min_runs`); null until approved."""
        if not suggestion.verification:
            return None
        return {**suggestion.verification_detail, "status": suggestion.verification}

    @extend_schema_field(ExperimentOutputSerializer(allow_null=True))
    def get_experiment(self, suggestion: Suggestion) -> dict | None:
        """The experiment an approval started (null before approval, or with experiments off)."""
        try:
            experiment = suggestion.experiment  # select_related by the selectors: no query per row
        except Experiment.DoesNotExist:
            return None
        return ExperimentOutputSerializer(experiment).data


class SuggestionDetailOutputSerializer(SuggestionOutputSerializer):
    class Meta(SuggestionOutputSerializer.Meta):
        fields = [*SuggestionOutputSerializer.Meta.fields, "evidence"]


class SuggestionListApi(APIView):
    required_scopes = Scope.REFLECTION
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanReview]

    @extend_schema(
        parameters=[
            OpenApiParameter("case", str, description="Only this case (UUID)."),
            OpenApiParameter("status", str, enum=SuggestionStatus.values),
        ],
        responses=SuggestionOutputSerializer(many=True),
        summary="The review queue: suggestions, newest first",
    )
    def get(self, request: Request) -> Response:
        suggestions = selectors.suggestion_list(
            case_id=request.query_params.get("case"), status=request.query_params.get("status")
        )
        paginator = NumberedPagination()
        page = paginator.paginate_queryset(suggestions, request, view=self)
        return paginator.get_paginated_response(SuggestionOutputSerializer(page, many=True).data)


class SuggestionDetailApi(APIView):
    required_scopes = Scope.REFLECTION
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanReview]

    @extend_schema(responses=SuggestionDetailOutputSerializer, summary="One suggestion with its evidence")
    def get(self, request: Request, suggestion_id: int) -> Response:
        return Response(SuggestionDetailOutputSerializer(selectors.suggestion_get(suggestion_id)).data)


class NoteInput(serializers.Serializer):
    note = serializers.CharField(max_length=services.MAX_NOTE, required=False, allow_blank=True, default="")


class SuggestionApproveApi(APIView):
    required_scopes = Scope.REVIEW
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanApprove]

    @extend_schema(
        request=NoteInput,
        responses={200: SuggestionOutputSerializer},
        summary="Approve: start an experiment serving the revised plan to a share of traffic, or with experiments "
                "off apply it as a new case version (409 if stale, not pending, or an experiment already runs)",
    )
    def post(self, request: Request, suggestion_id: int) -> Response:
        data = NoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        suggestion = selectors.suggestion_get(suggestion_id)
        result = services.suggestion_approve(suggestion=suggestion, acting_user=request.user, note=data.validated_data["note"])
        if result.status == SuggestionStatus.STALE:
            raise Conflict(
                f"Suggestion #{result.pk} is stale and was not applied: {result.stale_reason}",
                errors={"status": ["stale"], "base_version": [f"Made against v{result.base_version}."]},
            )
        return Response(SuggestionOutputSerializer(result).data)


class SuggestionRejectApi(APIView):
    required_scopes = Scope.REVIEW
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanApprove]

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(max_length=services.MAX_NOTE, help_text="Why; required.")

    @extend_schema(request=InputSerializer, responses=SuggestionOutputSerializer, summary="Reject with a note")
    def post(self, request: Request, suggestion_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        suggestion = selectors.suggestion_get(suggestion_id)
        result = services.suggestion_reject(suggestion=suggestion, acting_user=request.user, note=data.validated_data["note"])
        return Response(SuggestionOutputSerializer(result).data)


class SuggestionRollbackApi(APIView):
    required_scopes = Scope.REVIEW
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanApprove]

    @extend_schema(request=NoteInput, responses=SuggestionOutputSerializer, summary="Roll back: stop its experiment's candidate (a note is required), or undo an applied regression")
    def post(self, request: Request, suggestion_id: int) -> Response:
        data = NoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        suggestion = selectors.suggestion_get(suggestion_id)
        result = services.suggestion_rollback(suggestion=suggestion, acting_user=request.user, note=data.validated_data["note"])
        return Response(SuggestionOutputSerializer(result).data)


class NotMadeSerializer(serializers.Serializer):
    created = serializers.BooleanField()
    detail = serializers.CharField()


class SuggestionGenerateApi(APIView):
    required_scopes = Scope.REFLECTION
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanApprove]

    class InputSerializer(serializers.Serializer):
        case_id = serializers.UUIDField()
        use_llm = serializers.BooleanField(default=True)

    @extend_schema(
        request=InputSerializer,
        responses={201: SuggestionOutputSerializer, 200: NotMadeSerializer},
        summary="Make a suggestion for a weak case now (200 with the reason when none is made)",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        suggestion, reason = suggestion_generate_explained(
            case_id=data.validated_data["case_id"], use_llm=data.validated_data["use_llm"]
        )
        if suggestion is None:
            return Response({"created": False, "detail": reason}, status=status.HTTP_200_OK)
        return Response(SuggestionOutputSerializer(suggestion).data, status=status.HTTP_201_CREATED)
