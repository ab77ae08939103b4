from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection

from agents.demo import data as demo_data
from agents.knowledge.services import documents_load_path
from tests.bench.support import database_url
from tests.support.analytics_pg import demo_analytics_to_postgres, drop_demo_analytics


@pytest.fixture(autouse=True)
def fresh_cache():
    """BM25 corpus statistics (layered: every alias) and SQL results are cached; one test's
    corpus must not leak into the next."""
    for alias in settings.CACHES:
        caches[alias].clear()
    yield
    for alias in settings.CACHES:
        caches[alias].clear()


@pytest.fixture
def analytics_db(settings, tmp_path):
    """A fresh demo analytics database in a temporary directory, configured for the workers."""
    path = tmp_path / "analytics.sqlite3"
    demo_data.create_demo_analytics_db(path)
    settings.ANALYTICS_DATABASE_URL = f"sqlite:///{path}"
    return path


@pytest.fixture
def pg_demo_analytics(settings, analytics_db):
    """The demo analytics data copied into the PostgreSQL test database, configured for the workers.

    Needs `django_db(transaction=True)`: the copy is made over a separate connection.
    """
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL analytics; run through scripts/run_tests.py")
    url = database_url()
    tables = list(settings.ANALYTICS_ALLOWED_TABLES)  # the demo tables, in foreign-key order by default
    demo_analytics_to_postgres(url, source=analytics_db, tables=tables)
    settings.ANALYTICS_DATABASE_URL = url
    yield url
    drop_demo_analytics(url, tables=tables)


@pytest.fixture
def knowledge(db):
    """The shipped demo documents, loaded (chunked, embedded, indexed)."""
    return documents_load_path(demo_data.DEMO_DOCS_DIR)


@pytest.fixture
def no_llm(settings):
    settings.OPENAI_API_KEY = ""
    settings.LLM_MODEL = ""
    return settings


@pytest.fixture
def session_llm(llm_settings, openai_server):
    """The scripted OpenAI-compatible server with a budget large enough for a few sessions."""
    llm_settings.LLM_CALLS_PER_MINUTE = 100
    llm_settings.LLM_RETRY_ATTEMPTS = 1
    return openai_server
