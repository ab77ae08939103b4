from django.contrib import admin
from django.urls import include, path
from config import api_docs, health

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/ready", health.ready, name="health-ready"),
    path("admin/", admin.site.urls),
    path("api/schema/", api_docs.SchemaView.as_view(), name="api-schema"),
    path("api/docs/", api_docs.docs, name="api-docs"),
    path("api/", include("casebank.urls")),
    path("api/", include("reflection.urls")),
    path("api/", include("agents.urls")),
    path("", include("django_prometheus.urls")),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

admin.site.site_header = "Caseloop"
admin.site.site_title = "Caseloop admin"
admin.site.index_title = "Case bank, execution log and reflection"
# Wide tables (cases, logs, suggestions) need the width more than a second menu.
admin.site.enable_nav_sidebar = False
