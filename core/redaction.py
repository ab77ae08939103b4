"""Masking secrets in text: log output (config.log_redaction) and error text we store.

Exception text is written as it was raised: a database driver's error may quote its URL with
the password, an LLM provider echoes a wrong key back, a dump of a request carries its
`Authorization` header. `redact` masks, in any text:

- the password of any `scheme://user:password@host` URL (DATABASE_URL, REDIS_URL, webhooks);
- `Authorization: Token|Bearer|Basic <credential>` headers, `Bearer <token>` anywhere, and
  `password=` / `"password": ...` pairs (libpq DSNs, dict dumps);
- Caseloop API keys (`cl_` + 43 URL-safe characters, see `casebank.access.services.api_key_create`)
  and OpenAI-style `sk-...` keys;
- the configured values of `SECRET_KEY`, `OPENAI_API_KEY` and `ALERT_WEBHOOK_URL`, whatever
  their shape.
"""
from __future__ import annotations

import re

MASK = "[redacted]"
# Settings whose values are secret in full, masked wherever they appear verbatim.
SECRET_SETTINGS = ("SECRET_KEY", "OPENAI_API_KEY", "ALERT_WEBHOOK_URL")
# Shorter values would mask ordinary words; real secrets are far longer.
MIN_SECRET_LENGTH = 8

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host — the user part may be empty (redis://:password@host).
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@]*:)[^\s/?#@]+(?=@)"), rf"\g<1>{MASK}"),
    # Authorization headers, as a header line or in a dict dump ('HTTP_AUTHORIZATION': 'Token x').
    (
        re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?\s*(?:(?:token|bearer|basic)\s+)?)[^\s'",;}]+"""),
        rf"\g<1>{MASK}",
    ),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/-]+=*"), rf"\g<1>{MASK}"),
    (re.compile(r"""(?i)(\b(?:password|passwd|pwd)['"]?\s*[:=]\s*['"]?)[^\s'",;}&]+"""), rf"\g<1>{MASK}"),
    # Caseloop API keys: "cl_" + secrets.token_urlsafe(32).
    (re.compile(r"\bcl_[A-Za-z0-9_-]{20,}"), f"cl_{MASK}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), f"sk-{MASK}"),
)


def _secret_values() -> list[str]:
    from django.conf import settings

    if not settings.configured:
        return []
    values = (str(getattr(settings, name, "") or "") for name in SECRET_SETTINGS)
    # Longest first, so a secret containing another is masked whole.
    return sorted((value for value in values if len(value) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str) -> str:
    for value in _secret_values():
        text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
