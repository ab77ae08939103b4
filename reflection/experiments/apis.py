"""`GET /api/cases/{id}/plan/`: the version of a case's plan a caller runs, with its experiment
arm; `/api/experiments/`: experiments read and decided (promote, roll back, share, ramp)."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.permissions import RequiredScopes, require_permission
from casebank.access.scopes import Scope
from casebank.cases.apis import actor_of
from casebank.cases.plans import ASSIGNMENT_HEADER, MAX_KEY_LENGTH, assignment_key_problem
from casebank.models import Case, ReviewState
from casebank.search.apis import assignment_key_of
from core.api_errors import ErrorSerializer
from core.audit import admin_history_record
from core.errors import InvalidInput, NotFound
from core.pagination import NumberedPagination
from core.strict_input import NumberField, StrictSerializer, TextField
from reflection.experiments import services
from reflection.experiments.ramp import next_share
from reflection.experiments.readout import experiment_arms, looked_step_counts
from reflection.experiments.selectors import experiment_get, experiment_list, resolve_plan
from reflection.experiments.sequential import Outcome
from reflection.experiments.services import MAX_NOTE
from reflection.models import Experiment, ExperimentStatus


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


# -- /api/experiments/ ------------------------------------------------------------------------
#
# Reading needs the key's `reflection` scope and the user's `reflection.view_experiment` (or the
# approve permission): what the experiment pages in admin need. Every change needs the `review`
# scope and `reflection.approve_suggestion`, the permission admin asks for the same change, and
# is written to the experiment's admin history under the key's user.

APPROVE_PERMISSION = "reflection.approve_suggestion"
VIEW_PERMISSION = "reflection.view_experiment"
MAX_LOOKS = 500  # the latest looks in the detail, as on the admin chart


class CanReadExperiments(permissions.BasePermission):
    message = f"Reading experiments needs the {VIEW_PERMISSION} or {APPROVE_PERMISSION} permission (as in admin)."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and (user.has_perm(VIEW_PERMISSION) or user.has_perm(APPROVE_PERMISSION)))


class CountsSerializer(serializers.Serializer):
    runs = serializers.IntegerField()
    successes = serializers.IntegerField()


class ArmSerializer(CountsSerializer):
    arm = serializers.ChoiceField(choices=["current", "candidate"])
    version = serializers.IntegerField()
    share = serializers.FloatField(help_text="Share of assignment keys served this arm now.")
    success_rate = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                     help_text="95 % Wilson interval of the success rate; null without runs.")


class StepSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    share = serializers.FloatField()
    started_at = serializers.DateTimeField()
    started_by = serializers.CharField(help_text="A reviewer, or 'reflection' (the ramp rule).")
    reason = serializers.CharField()
    current = CountsSerializer(allow_null=True, help_text="Runs in this step at the last look; null if none since.")
    candidate = CountsSerializer(allow_null=True)


class RampSerializer(serializers.Serializer):
    schedule = serializers.ListField(child=serializers.FloatField(), help_text="The shares of the ramp, in order.")
    step = serializers.IntegerField()
    held = serializers.BooleanField(help_text="A reviewer holds the share: the ramp rule does not move it.")
    next_share = serializers.FloatField(allow_null=True)
    steps = StepSerializer(many=True)


class StatisticSerializer(serializers.Serializer):
    test = serializers.CharField()
    outcome = serializers.ChoiceField(choices=[outcome.value for outcome in Outcome])
    difference = serializers.FloatField(allow_null=True, help_text="Candidate - current, compared within each step.")
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                     help_text="Always-valid 95 % interval of the difference.")
    likelihood_ratio = serializers.FloatField()
    threshold = serializers.FloatField(help_text="1/alpha: the ratio at which the rule decides.")
    p_value = serializers.FloatField(help_text="Always-valid p-value (running minimum).")


class LookSerializer(serializers.Serializer):
    looked_at = serializers.DateTimeField()
    step = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)
    current_runs = serializers.IntegerField()
    current_successes = serializers.IntegerField()
    candidate_runs = serializers.IntegerField()
    candidate_successes = serializers.IntegerField()
    likelihood_ratio = serializers.FloatField()
    p_value = serializers.FloatField()
    outcome = serializers.CharField()


LOOK_FIELDS: tuple[str, ...] = tuple(LookSerializer().fields)


class ExperimentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    suggestion_id = serializers.IntegerField()
    case_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ExperimentStatus.choices)
    flagged = serializers.BooleanField(help_text="Needs a person: inconclusive, or better awaiting review.")
    base_version = serializers.IntegerField()
    candidate_version = serializers.IntegerField()
    share = serializers.FloatField(help_text="The candidate's share of assignment keys now.")
    arms = ArmSerializer(many=True)
    statistic = StatisticSerializer(allow_null=True, help_text="The last look; null before the first.")
    started_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField()
    decision_note = serializers.CharField()


class ExperimentDetailSerializer(ExperimentSerializer):
    ramp = RampSerializer()
    looks = LookSerializer(many=True, help_text=f"The statistic over time, oldest first (the latest {MAX_LOOKS}).")


def experiment_summary(experiment: Experiment) -> dict[str, Any]:
    """The experiment as its last look left it (`Experiment.detail`)."""
    detail = experiment.detail or {}
    statistic = None
    if "likelihood_ratio" in detail:
        statistic = {name: detail.get(name) for name in ("test", "outcome", "difference", "interval", "likelihood_ratio",
                                                         "threshold", "p_value")}
    return {
        "id": experiment.pk, "suggestion_id": experiment.suggestion_id, "case_id": experiment.case_id,
        "status": experiment.status, "flagged": experiment.flagged, "base_version": experiment.base_version,
        "candidate_version": experiment.candidate_version, "share": experiment.candidate_share,
        "arms": experiment_arms(experiment),
        "statistic": statistic, "started_at": experiment.started_at, "decided_at": experiment.decided_at,
        "decided_by": experiment.decided_by, "decision_note": experiment.decision_note,
    }


def experiment_detail(experiment: Experiment) -> dict[str, Any]:
    looked = looked_step_counts(experiment)
    steps = list(experiment.steps.order_by("number"))
    looks = list(experiment.looks.order_by("-looked_at")[:MAX_LOOKS])[::-1]
    return {
        **experiment_summary(experiment),
        "ramp": {
            "schedule": experiment.ramp, "step": steps[-1].number if steps else 1, "held": experiment.ramp_held,
            "next_share": next_share(ramp=experiment.ramp, share=experiment.candidate_share),
            "steps": [{"number": step.number, "share": step.share, "started_at": step.started_at,
                       "started_by": step.started_by, "reason": step.reason,
                       **looked.get(step.number, {"current": None, "candidate": None})} for step in steps],
        },
        "looks": [{name: getattr(look, name) for name in LOOK_FIELDS} for look in looks],
    }


class ExperimentListApi(APIView):
    required_scopes = Scope.REFLECTION
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanReadExperiments]
    pagination_class = NumberedPagination  # read by the schema generator (the view paginates by hand)

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=ExperimentStatus.choices, required=False)
        case = serializers.UUIDField(required=False, help_text="Only this case's experiments.")

    @extend_schema(parameters=[FilterSerializer], responses=ExperimentSerializer(many=True),
                   summary="Experiments, newest first: arms, share and the last look's statistic")
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        experiments = experiment_list(status=filters.validated_data.get("status"),
                                      case_id=filters.validated_data.get("case"))
        paginator = NumberedPagination()
        page = paginator.paginate_queryset(experiments, request, view=self) or []
        return paginator.get_paginated_response(ExperimentSerializer([experiment_summary(e) for e in page], many=True).data)


class ExperimentDetailApi(APIView):
    required_scopes = Scope.REFLECTION
    permission_classes = [permissions.IsAuthenticated, RequiredScopes, CanReadExperiments]

    @extend_schema(responses=ExperimentDetailSerializer,
                   summary="One experiment: arms with intervals, the ramp and its steps, the statistic over time, the decision")
    def get(self, request: Request, experiment_id: int) -> Response:
        return Response(ExperimentDetailSerializer(experiment_detail(experiment_get(experiment_id))).data)


class ExperimentNoteInput(StrictSerializer):
    note = TextField(max_length=MAX_NOTE, required=False, allow_blank=True, default="")


class ExperimentChangeApi(APIView):
    """The base of the changes: scope, permission, input, service, admin history, the detail."""

    required_scopes = Scope.REVIEW
    input_serializer: type[serializers.Serializer] = ExperimentNoteInput
    doing = ""

    def change(self, experiment: Experiment, data: dict[str, Any], user: Any) -> Experiment:
        raise NotImplementedError

    def post(self, request: Request, experiment_id: int) -> Response:
        require_permission(request.user, APPROVE_PERMISSION, self.doing)
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = self.change(experiment_get(experiment_id), data.validated_data, request.user)
        note = data.validated_data.get("note")
        admin_history_record(user=request.user, obj=experiment, message=(
            f"{self.doing} through the API ({actor_of(request)}): {experiment.get_status_display()}, share "
            f"{experiment.candidate_share:.0%}" + (f". {note}" if note else "")))
        return Response(ExperimentDetailSerializer(experiment_detail(experiment)).data)


CHANGE_RESPONSES = {200: ExperimentDetailSerializer, 409: ErrorSerializer}


@extend_schema_view(post=extend_schema(request=ExperimentNoteInput, responses=CHANGE_RESPONSES,
                                       summary="Promote the candidate to current (awaiting review, inconclusive, or overriding a rollback; else 409)"))
class ExperimentPromoteApi(ExperimentChangeApi):
    doing = "Promoting an experiment"

    def change(self, experiment: Experiment, data: dict[str, Any], user: Any) -> Experiment:
        return services.experiment_promote(experiment=experiment, acting_user=user, note=data["note"])


class ExperimentRollbackInput(StrictSerializer):
    note = TextField(max_length=MAX_NOTE, help_text="Why; required, as in admin.")


@extend_schema_view(post=extend_schema(request=ExperimentRollbackInput, responses=CHANGE_RESPONSES,
                                       summary="Roll back: stop serving the candidate (a note is required; a promoted one is undone)"))
class ExperimentRollbackApi(ExperimentChangeApi):
    doing = "Rolling an experiment back"
    input_serializer = ExperimentRollbackInput

    def change(self, experiment: Experiment, data: dict[str, Any], user: Any) -> Experiment:
        return services.experiment_rollback(experiment=experiment, acting_user=user, note=data["note"])


class ExperimentShareInput(ExperimentNoteInput):
    share = NumberField(min_value=0.0001, max_value=0.9999, help_text="The candidate's share of keys, 0 < share < 1.")


@extend_schema_view(post=extend_schema(request=ExperimentShareInput, responses=CHANGE_RESPONSES,
                                       summary="Set the candidate's share now (a new ramp step; the ramp holds there until resumed)"))
class ExperimentShareApi(ExperimentChangeApi):
    doing = "Setting an experiment's share"
    input_serializer = ExperimentShareInput

    def change(self, experiment: Experiment, data: dict[str, Any], user: Any) -> Experiment:
        return services.experiment_set_share(experiment=experiment, share=data["share"], acting_user=user,
                                             note=data["note"])


class ExperimentRampInput(ExperimentNoteInput):
    action = serializers.ChoiceField(choices=["advance", "hold", "resume"], help_text=(
        "`advance`: to the ramp's next share now; `hold`: the ramp rule stops moving the share; `resume`: it moves "
        "it again."))


@extend_schema_view(post=extend_schema(request=ExperimentRampInput, responses=CHANGE_RESPONSES,
                                       summary="Advance, hold or resume the canary's ramp (409 when not running, or advance at the last step)"))
class ExperimentRampApi(ExperimentChangeApi):
    doing = "Changing an experiment's ramp"
    input_serializer = ExperimentRampInput

    def change(self, experiment: Experiment, data: dict[str, Any], user: Any) -> Experiment:
        if data["action"] == "advance":
            return services.experiment_ramp_advance(experiment=experiment, acting_user=user, note=data["note"])
        return services.experiment_ramp_hold(experiment=experiment, held=data["action"] == "hold")
