from django.urls import path

from agents.sessions import apis, sse
from agents.tools import apis as tool_apis

urlpatterns = [
    path("sessions/", apis.SessionListCreateApi.as_view(), name="session-list"),
    path("sessions/<uuid:session_id>", apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<uuid:session_id>/", apis.SessionDetailApi.as_view()),
    path("sessions/<uuid:session_id>/stream", sse.session_stream, name="session-stream"),
    path("agents/data-analysis/", tool_apis.DataAnalysisApi.as_view(), name="data-analysis"),
    path("agents/vision/", tool_apis.VisionApi.as_view(), name="vision"),
]
