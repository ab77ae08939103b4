"""OTLP_AGENT_CASES is checked when the settings load: a typo fails the start, not every export."""
from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings


def _load_settings(value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OTLP_AGENT_CASES": value}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
        timeout=60,
    )


def test_a_mapping_to_something_that_is_not_a_case_id_stops_the_start():
    refused = _load_settings("sql-agent=3f1c2a9e-0000-4000-8000-000000000001,reporter=oops")
    assert refused.returncode != 0
    assert "OTLP_AGENT_CASES maps 'reporter' to 'oops', which is not a case id." in refused.stderr
    assert _load_settings("sql-agent=3f1c2a9e-0000-4000-8000-000000000001").returncode == 0
