from django.urls import path

from casebank.cases import apis
from casebank.consolidation import apis as apis_consolidation
from casebank.search import apis as search_apis

urlpatterns = [
    path("cases/", apis.CaseListCreateApi.as_view(), name="case-list"),
    path("cases/search/", search_apis.CaseSearchApi.as_view(), name="case-search"),
    path("cases/<uuid:case_id>/", apis.CaseDetailApi.as_view(), name="case-detail"),
    path("cases/<uuid:case_id>/status/", apis.CaseStatusApi.as_view(), name="case-status"),
    path("cases/<uuid:case_id>/versions/", apis.CaseVersionsApi.as_view(), name="case-versions"),
    path("cases/<uuid:case_id>/rollback/", apis.CaseRollbackApi.as_view(), name="case-rollback"),
    path("cases/<uuid:case_id>/approve/", apis.CaseApproveApi.as_view(), name="case-approve"),
    path("cases/<uuid:case_id>/reject/", apis.CaseRejectApi.as_view(), name="case-reject"),
    path("consolidation/run", apis_consolidation.ConsolidationRunApi.as_view(), name="consolidation-run"),
    path(
        "consolidation/restore/<uuid:case_id>",
        apis_consolidation.ConsolidationRestoreApi.as_view(),
        name="consolidation-restore",
    ),
]
