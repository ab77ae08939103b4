from django.contrib import admin
from django.urls import include, path

from agents.mcp.views import mcp_under_wsgi
from config import api_docs, health, metrics
from config.dashboard import views as dashboard
from reflection.otlp import apis as otlp

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    # Also answered by config.probes before host validation; routed here for reverse().
    path("metrics", metrics.export, name="prometheus-django-metrics"),
    path("", dashboard.home, name="home"),
    path("favicon.ico", dashboard.favicon, name="favicon"),
    # The dashboard answers the admin index's own URL (admin:index), ahead of the admin's view.
    path("admin/", admin.site.admin_view(dashboard.index), name="dashboard"),
    path("admin/", admin.site.urls),
    path("api/schema/", api_docs.SchemaView.as_view(), name="api-schema"),
    path("api/docs/", api_docs.docs, name="api-docs"),
    path("api/", include("casebank.urls")),
    path("api/", include("reflection.urls")),
    path("api/", include("agents.urls")),
    # OTLP/HTTP's fixed path, where exporters send traces (OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces).
    path("v1/traces", otlp.TraceExportApi.as_view(), name="otlp-traces"),
    # Served by the ASGI server (config.asgi routes it before Django); the WSGI app refuses it (421).
    path("mcp", mcp_under_wsgi, name="mcp"),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

admin.site.site_header = "Caseloop"
admin.site.site_title = "Caseloop admin"
admin.site.index_title = "Dashboard"
admin.site.index_template = "admin/dashboard.html"
# "View site" goes to `/`, which redirects to this dashboard.
# Wide tables (cases, logs, suggestions) need the width more than a second menu.
admin.site.enable_nav_sidebar = False
