from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches

from agents import demo_data
from agents.documents import documents_load_path


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
