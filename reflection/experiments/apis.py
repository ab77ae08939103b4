"""`GET /api/cases/{id}/plan/`: the version of a case's plan a caller runs, with its experiment arm."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.scopes import Scope
from casebank.cases.plans import ASSIGNMENT_HEADER, MAX_KEY_LENGTH, assignment_key_problem
from casebank.models import Case, ReviewState
from casebank.search.apis import assignment_key_of
from core.errors import InvalidInput, NotFound
from reflection.experiments.selectors import resolve_plan


class CasePlanApi(APIView):
    required_scopes = Scope.CASES_READ

    class OutputSerializer(serializers.Serializer):
        case_id = serializers.UUIDField()
        version = serializers.IntegerField(help_text="The version to run; log the run with this `case_version`.")
        plan = serializers.JSONField()
        arm = serializers.ChoiceField(choices=["current", "candidate"], allow_null=True,
                                      help_text="The experiment arm of this key; null when no experiment runs.")
        experiment_id = serializers.IntegerField(allow_null=True)
        current_version = serializers.IntegerField(help_text="The case's current version.")

    @extend_schema(
        parameters=[
            OpenApiParameter("key", str, required=False, description=(
                f"The assignment key (a session or conversation id, at most {MAX_KEY_LENGTH} printable characters); "
                f"else the `{ASSIGNMENT_HEADER}` header, else the API key. The same key always gets the same arm.")),
        ],
        responses=OutputSerializer,
        summary="The plan to run for a key: the current version, or a candidate under experiment",
    )
    def get(self, request: Request, case_id: str) -> Response:
        key = request.query_params.get("key")
        if key is None:
            key = assignment_key_of(request)
        elif (problem := assignment_key_problem(key)) is not None:
            raise InvalidInput("Invalid assignment key.", errors={"key": [problem]})
        # Cases awaiting review (or rejected) are never planned with, so they have no plan to serve.
        case = Case.objects.defer("embedding").filter(pk=case_id, review_state=ReviewState.APPROVED).first()
        if case is None:
            raise NotFound("Case not found.")
        served = resolve_plan(case=case, key=key)
        return Response({
            "case_id": case.pk, "version": served.version, "plan": served.plan, "arm": served.arm,
            "experiment_id": served.experiment_id, "current_version": case.version,
        })
