from django.contrib import admin
from django.urls import include, path

from config import api_docs, health, metrics

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    # Also answered by config.probes before host validation; routed here for reverse().
    path("metrics", metrics.export, name="prometheus-django-metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", api_docs.SchemaView.as_view(), name="api-schema"),
    path("api/docs/", api_docs.docs, name="api-docs"),
    path("api/", include("casebank.urls")),
    path("api/", include("reflection.urls")),
    path("api/", include("agents.urls")),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

admin.site.site_header = "Caseloop"
admin.site.site_title = "Caseloop admin"
admin.site.index_title = "Case bank, execution log and reflection"
# Wide tables (cases, logs, suggestions) need the width more than a second menu.
admin.site.enable_nav_sidebar = False
