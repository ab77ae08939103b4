"""Derived settings of the supervisor and its workers.

The settings themselves (`QUALITY_THRESHOLD`, `AGENTS_*`, `ANALYTICS_*`, ...) and their defaults
live in `config.settings` only, documented in docs/agents.md; modules read `settings.X`.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings


def analytics_database_url() -> str:
    """The Text2SQL database: `ANALYTICS_DATABASE_URL`, or the demo file when it is empty."""
    url = settings.ANALYTICS_DATABASE_URL
    if url:
        return url
    return f"sqlite:///{Path(settings.BASE_DIR) / 'var' / 'analytics.sqlite3'}"
