"""A logging filter that masks secrets before any configured handler writes a record.

`LOGGING` attaches `RedactSecrets` to every handler, so the message, its arguments, the traceback
and the stack are all masked in what reaches the output; what is masked is `casebank.redaction`.
"""
from __future__ import annotations

import logging

from core.redaction import redact


class RedactSecrets(logging.Filter):
    """Rewrites the record in place (message, traceback, stack) and never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as usual
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            # What the handler's Formatter would write; it reuses exc_text once set.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
