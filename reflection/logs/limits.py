"""What one execution log may hold: shared by the validator and the fast decoder."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

MAX_BATCH = 1_000
MAX_TEXT = 100  # error_type and model
MAX_ERROR_MESSAGE = 10_000
MAX_CONTEXT_BYTES = 64 * 1024
MAX_EXECUTION_TIME_MS = 24 * 3600 * 1000
# The integer columns are PostgreSQL `integer` (PositiveIntegerField): larger values would fail
# in the database (IntegrityError on PostgreSQL, OverflowError past 2**63 on SQLite).
MAX_INT_COLUMN = 2**31 - 1
# Clocks drift; a run "from the future" by more than this is a client bug.
FUTURE_TOLERANCE = timedelta(minutes=5)
# No agent ran before this; earlier dates are client bugs (year 1 even overflows on conversion).
EARLIEST_CREATED_AT = datetime(2000, 1, 1, tzinfo=timezone.utc)
