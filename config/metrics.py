"""`/metrics`: the Prometheus exposition of this process (later: of every process on the pod)."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django_prometheus.exports import ExportToDjangoView


def export(request: HttpRequest) -> HttpResponse:
    return ExportToDjangoView(request)
