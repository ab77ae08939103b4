"""The LLM client: `get_llm_client()` → `LLMClient | None`; see docs/llm.md."""
from __future__ import annotations

from reflection.llm.client import LLMClient, LLMResult, get_llm_client, llm_breaker_state, llm_configured
from reflection.llm.errors import LLMError, LLMUnavailable

__all__ = [
    "LLMClient",
    "LLMError",
    "LLMResult",
    "LLMUnavailable",
    "get_llm_client",
    "llm_breaker_state",
    "llm_configured",
]
