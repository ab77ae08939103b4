"""The supervisor's one door to the LLM: reflection's client, or None when none is configured."""
from __future__ import annotations

from reflection.llm import LLMClient, LLMError, LLMResult, LLMUnavailable, get_llm_client

__all__ = ["LLMClient", "LLMError", "LLMResult", "LLMUnavailable", "get_llm_client", "llm_client"]


def llm_client() -> LLMClient | None:
    return get_llm_client()
