"""The admin home page and the few site-level routes around it (`/`, `/favicon.ico`)."""
from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from config.dashboard import selectors
from config.dashboard.charts import per_minute_bars_svg
from reflection.analysis.charts import success_rate_trend_svg

# A plain "C" on the admin's blue: the browser asks for it on every page.
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#417690"/>'
    '<text x="16" y="23" font-size="20" font-family="sans-serif" text-anchor="middle" fill="#fff">C</text></svg>'
)


def index(request: HttpRequest) -> TemplateResponse:
    """Django's admin index (the app list stays below) with the dashboard on top. Wrapped in
    `admin_view` by the URLconf, so only staff reach it."""
    board = selectors.dashboard_cached()
    context = {
        "dashboard": board,
        "cache_seconds": settings.DASHBOARD_CACHE_SECONDS,
        "trend_chart": success_rate_trend_svg(board.trend),
        "ingestion_chart": per_minute_bars_svg(board.ingestion_per_minute),
        "ingestion_last_minute": f"{board.ingestion_per_minute[-1][1] if board.ingestion_per_minute else 0:,}",
        "ingestion_hour": f"{sum(n for _, n in board.ingestion_per_minute):,}",
    }
    return admin.site.index(request, extra_context=context)


def home(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:index"))


def favicon(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(FAVICON_SVG, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
