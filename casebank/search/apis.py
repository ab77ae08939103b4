"""`POST /api/cases/search/`: ranked cases for a query (vector, BM25 or hybrid)."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from casebank.access.scopes import Scope
from casebank.cases import read_cache, services
from casebank.cases.apis import CaseOutputSerializer
from casebank.cases.plans import ASSIGNMENT_HEADER, assignment_key_problem, served_plans
from casebank.models import Case
from casebank.search import selectors
from core import task_queue
from core.errors import InvalidInput


def assignment_key_of(request: Request) -> str:
    """The key that picks an experiment's arm for this caller: the `X-Caseloop-Assignment-Key`
    header (a session or conversation id), else the API key, so one client keeps one arm."""
    key = request.headers.get(ASSIGNMENT_HEADER)
    if key is None:
        api_key = getattr(request, "auth", None)
        return f"api-key:{getattr(api_key, 'pk', None) or getattr(request.user, 'pk', '')}"
    problem = assignment_key_problem(key)
    if problem is not None:
        raise InvalidInput("Invalid assignment key.", errors={ASSIGNMENT_HEADER: [problem]})
    return key


class CaseSearchApi(APIView):
    required_scopes = Scope.CASES_READ

    class InputSerializer(serializers.Serializer):
        query = serializers.CharField(max_length=2_000)
        k = serializers.IntegerField(min_value=1, max_value=100, default=10)
        mode = serializers.ChoiceField(choices=selectors.SEARCH_MODES, default="hybrid")
        include_archived = serializers.BooleanField(default=False)
        record_use = serializers.BooleanField(
            default=False, help_text="Count the returned cases as used (planners set this)."
        )

    class OutputSerializer(serializers.Serializer):
        mode = serializers.CharField()
        results = serializers.ListField(child=serializers.DictField(), help_text=(
            "Cases, best first, each with `score` (relevance adjusted by the track record, at most 0.6%), "
            "`relevance`, `similarity`, `bm25`, `role` (`example` or `warning`) and `warning` (true for a "
            "case in warning or with a success rate below 50%: shown as what to avoid, never hidden). `version` "
            "and `plan` are the ones to run for the caller's assignment key (header `X-Caseloop-Assignment-Key`, "
            "else the API key): a candidate version under experiment for a share of keys; `experiment` says "
            "which arm (`{id, arm}`) or is null. Log runs with that `case_version`."
        ))

    @extend_schema(
        request=InputSerializer,
        responses=OutputSerializer,
        summary="Top-k similar cases (vector, bm25 or hybrid: normalised scores fused)",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = assignment_key_of(request)
        params = dict(data.validated_data)
        record_use = params.pop("record_use")
        # Cached for everyone; the arm's plan is per caller, so it is applied after the cache.
        results = _with_served_plans(read_cache.cached_read("search", params, lambda: _search_results(params)), key)
        if record_use and results:
            # Counting uses must not slow the search: it runs in the task queue, or inline (one
            # UPDATE) when the broker is down.
            ids = [item["id"] for item in results]
            task_queue.enqueue_on_commit(
                "casebank.cases.tasks.record_case_use", ids, if_unavailable=lambda: services.case_record_use(case_ids=ids)
            )
        return Response({"mode": params["mode"], "results": results})


def _search_results(params: dict[str, Any]) -> list[dict[str, Any]]:
    hits = selectors.case_search(**params)
    # One serializer for all hits: a ModelSerializer builds its fields per instance.
    cases = CaseOutputSerializer([hit.case for hit in hits], many=True).data
    return [
        {**item, "score": hit.score, "relevance": hit.relevance, "similarity": hit.similarity, "bm25": hit.bm25,
         "role": hit.role, "warning": hit.warning}
        for item, hit in zip(cases, hits, strict=False)
    ]


def _with_served_plans(results: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    if not results:
        return results
    cases = [Case(pk=item["id"], version=item["version"], plan=item["plan"]) for item in results]
    served = served_plans(cases, key)
    out = []
    for item in results:
        plan = served[str(item["id"])]
        experiment = {"id": plan.experiment_id, "arm": plan.arm} if plan.experiment_id is not None else None
        out.append({**item, "version": plan.version, "plan": plan.plan, "experiment": experiment})
    return out
