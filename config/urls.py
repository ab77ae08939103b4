from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/ready", health.ready, name="health-ready"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
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
