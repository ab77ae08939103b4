"""What callers of the LLM client catch: `LLMError` covers both."""
from __future__ import annotations


class LLMError(Exception):
    """The call was made and failed: bad output after retries, or provider errors after retries."""


class LLMUnavailable(LLMError):
    """No call was made: no LLM configured, the circuit breaker is open, or the rate limit is used up."""

    def __init__(self, message: str, *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after
