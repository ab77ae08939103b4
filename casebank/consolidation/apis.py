"""Consolidation API: plan or apply a run; restore an archived case."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.scopes import Scope
from casebank.cases.apis import CaseOutputSerializer, actor_of
from casebank.consolidation import services as consolidation

APPLY_PERMISSION = "casebank.run_consolidation"


class ActionSerializer(serializers.Serializer):
    case_id = serializers.UUIDField()
    title = serializers.CharField()
    reason = serializers.ChoiceField(choices=["low_performance", "duplicate", "inactive", "manual"])
    detail = serializers.CharField()
    merge_into = serializers.UUIDField(allow_null=True)
    similarity = serializers.FloatField(allow_null=True)
    applied = serializers.BooleanField()


class ConsolidationRunApi(APIView):
    required_scopes = Scope.CASES_WRITE

    class InputSerializer(serializers.Serializer):
        dry_run = serializers.BooleanField(required=False, default=True)

    class OutputSerializer(serializers.Serializer):
        dry_run = serializers.BooleanField()
        actions = ActionSerializer(many=True)
        applied = serializers.IntegerField()
        held_back = serializers.DictField(
            child=serializers.IntegerField(),
            help_text="Cases a rule would archive but a safety rule kept, by rule: "
            "`not_analysed`, `heavily_used`, `used_recently`.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer},
        summary="Consolidate the case bank: candidates (dry run, default) or actions applied",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dry_run = data.validated_data["dry_run"]
        if not dry_run and not request.user.has_perm(APPLY_PERMISSION):
            raise PermissionDenied("Applying consolidation needs the run_consolidation permission.")
        return Response(consolidation.consolidation_run(dry_run=dry_run, actor=actor_of(request)))


class ConsolidationRestoreApi(APIView):
    required_scopes = Scope.CASES_WRITE

    @extend_schema(request=None, responses={200: CaseOutputSerializer}, summary="Restore an archived case")
    def post(self, request: Request, case_id) -> Response:
        if not request.user.has_perm(APPLY_PERMISSION):
            raise PermissionDenied("Restoring needs the run_consolidation permission.")
        case = consolidation.case_restore(case_id=case_id, actor=actor_of(request))
        return Response(CaseOutputSerializer(case).data)
