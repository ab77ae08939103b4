"""Without Redis, a case write in another process (the queue worker storing an analysis)
retires this process's cached reads at once (issue #15: the web process served a case's
success rate up to 30 s stale)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from casebank.models import Case

pytestmark = pytest.mark.django_db

WORKER = (
    "import django; django.setup()\n"
    "from casebank.cases import read_cache\n"
    # What case_update_metrics does in the worker after its UPDATE commits.
    "read_cache._move_on()\n"
)


def _in_another_process(code: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, check=True, timeout=60)


def test_a_metrics_write_in_the_worker_shows_in_this_process_at_once(api, make_case):
    case = make_case(title="Monthly revenue by region")
    assert api.get(f"/api/cases/{case.pk}/").json()["success_rate"] is None  # cached here now
    assert api.post("/api/cases/search/", {"query": "monthly revenue", "mode": "bm25"},
                    format="json").json()["results"][0]["success_rate"] is None

    # The worker's UPDATE (same database), then its retirement of cached reads, in its process.
    Case.objects.filter(pk=case.pk).update(success_rate=0.25, run_count=8)
    _in_another_process(WORKER)

    assert api.get(f"/api/cases/{case.pk}/").json()["success_rate"] == 0.25
    assert api.post("/api/cases/search/", {"query": "monthly revenue", "mode": "bm25"},
                    format="json").json()["results"][0]["success_rate"] == 0.25
