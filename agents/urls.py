from django.urls import path

from agents import apis, sse

urlpatterns = [
    path("sessions/", apis.SessionCreateApi.as_view(), name="session-create"),
    path("sessions/<uuid:session_id>", apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<uuid:session_id>/", apis.SessionDetailApi.as_view()),
    path("sessions/<uuid:session_id>/stream", sse.session_stream, name="session-stream"),
    path("agents/data-analysis/", apis.DataAnalysisApi.as_view(), name="data-analysis"),
]
