from django.urls import path

from reflection.analysis import apis as apis_analysis
from reflection.experiments import apis as apis_experiments
from reflection.logs import apis
from reflection.suggestions import apis as apis_suggestions

urlpatterns = [
    path("cases/<uuid:case_id>/plan/", apis_experiments.CasePlanApi.as_view(), name="case-plan"),
    path("experiments/", apis_experiments.ExperimentListApi.as_view(), name="experiment-list"),
    path("experiments/<int:experiment_id>/", apis_experiments.ExperimentDetailApi.as_view(), name="experiment-detail"),
    path("experiments/<int:experiment_id>/promote", apis_experiments.ExperimentPromoteApi.as_view(), name="experiment-promote"),
    path("experiments/<int:experiment_id>/rollback", apis_experiments.ExperimentRollbackApi.as_view(), name="experiment-rollback"),
    path("experiments/<int:experiment_id>/share", apis_experiments.ExperimentShareApi.as_view(), name="experiment-share"),
    path("experiments/<int:experiment_id>/ramp", apis_experiments.ExperimentRampApi.as_view(), name="experiment-ramp"),
    path("logs/", apis.LogListCreateApi.as_view(), name="log-list"),
    path("reflection/analyze", apis_analysis.AnalyzeApi.as_view(), name="reflection-analyze"),
    path("reflection/cases/<uuid:case_id>/analysis", apis_analysis.CaseAnalysisApi.as_view(), name="reflection-case-analysis"),
    path("reflection/batch", apis_analysis.BatchStartApi.as_view(), name="reflection-batch"),
    path("reflection/runs/<int:run_id>", apis_analysis.RunDetailApi.as_view(), name="reflection-run"),
    path("suggestions/", apis_suggestions.SuggestionListApi.as_view(), name="suggestion-list"),
    path("suggestions/generate", apis_suggestions.SuggestionGenerateApi.as_view(), name="suggestion-generate"),
    path("suggestions/<int:suggestion_id>", apis_suggestions.SuggestionDetailApi.as_view(), name="suggestion-detail"),
    path("suggestions/<int:suggestion_id>/approve", apis_suggestions.SuggestionApproveApi.as_view(), name="suggestion-approve"),
    path("suggestions/<int:suggestion_id>/reject", apis_suggestions.SuggestionRejectApi.as_view(), name="suggestion-reject"),
    path("suggestions/<int:suggestion_id>/rollback", apis_suggestions.SuggestionRollbackApi.as_view(), name="suggestion-rollback"),
]
