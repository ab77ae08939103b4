"""Execution-log ingestion: validate a whole batch, then write it once, idempotently.

DRF's per-field serializers cost more than the insert itself at this volume, so validation
here is hand-written and flat. Nothing is written unless every record is valid; ids the
database already holds are skipped, so a client can safely re-send a batch.

Settle invariant (reflection runs rely on it, see `reflection.analysis.services`): a log becomes
visible (commits) less than `REFLECTION_INGEST_SETTLE_SECONDS` after its `ingested_at`. So
`ingested_at` is stamped as late as possible inside the writing transaction (on PostgreSQL
by the writing statement itself: the column defaults to STATEMENT_TIMESTAMP()), every ingest statement runs under
`INGEST_STATEMENT_TIMEOUT_MS`, and callers commit right after `logs_ingest` (no slow work
after it in the same transaction). A run then snapshots at now - settle, a point before
which every stamped log has committed.
"""
from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone
from psycopg.errors import UniqueViolation
from psycopg.types.json import set_json_dumps

from casebank.models import Case
from core.errors import InvalidInput
from core.validators import NUL, NUL_MESSAGE, nul_path
from reflection.analysis.engine.queries import ids_lookup
from reflection.analysis.engine.stats import message_template
from reflection.experiments.attribution import attributed_version
from reflection.experiments.selectors import RunningExperiment
from reflection.logs.decoding import LogRecord, TypedBatch
from reflection.logs.ids import uuid7
from reflection.logs.limits import (
    EARLIEST_CREATED_AT,
    FUTURE_TOLERANCE,
    MAX_BATCH,
    MAX_CONTEXT_BYTES,
    MAX_ERROR_MESSAGE,
    MAX_EXECUTION_TIME_MS,
    MAX_INT_COLUMN,
    MAX_TEXT,
)
from reflection.models import ExecutionLog, Experiment, ExperimentStatus

MAX_REPORTED_ERRORS = 50
# Bounds each ingest statement on PostgreSQL, far below the settle lag (settings: >= 30 s).
INGEST_STATEMENT_TIMEOUT_MS = 10_000

FIELDS = frozenset(
    {
        "id",
        "case_id",
        "case_version",
        "session_id",
        "success",
        "error_type",
        "error_message",
        "execution_time_ms",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "model",
        "context",
        "created_at",
    }
)


@dataclass
class IngestResult:
    ids: list[uuid.UUID]
    created: int
    duplicates: int = field(init=False)

    def __post_init__(self) -> None:
        self.duplicates = len(self.ids) - self.created


def _uuid(value: Any, name: str, errors: dict, *, required: bool = False) -> uuid.UUID | None:
    if value is None:
        if required:
            errors[name] = "This field is required."
        return None
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        errors[name] = "Must be a UUID string."
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        errors[name] = f'"{value[:50]}" is not a valid UUID.'
        return None


def _count(value: Any, name: str, errors: dict, *, maximum: int = MAX_INT_COLUMN) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = "Must be a whole number."
        return 0
    if not 0 <= value <= maximum:
        errors[name] = f"Must be between 0 and {maximum}."
        return 0
    return value


def _text(value: Any, name: str, errors: dict, *, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[name] = "Must be a string."
        return ""
    if len(value) > max_length:
        errors[name] = f"At most {max_length} characters."
        return ""
    if NUL in value:
        errors[name] = NUL_MESSAGE
        return ""
    return value


def _timestamp(value: Any, errors: dict, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        errors["created_at"] = "Must be an ISO 8601 date-time string."
        return now
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors["created_at"] = f'"{value[:50]}" is not an ISO 8601 date-time.'
        return now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_timezone.utc)
    try:
        moment = moment.astimezone(dt_timezone.utc)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        errors["created_at"] = f"Out of range: must be from {EARLIEST_CREATED_AT:%Y-%m-%d} to now."
        return now
    if moment < EARLIEST_CREATED_AT:
        errors["created_at"] = f"Must not be before {EARLIEST_CREATED_AT:%Y-%m-%d}."
        return now
    if moment > now + FUTURE_TOLERANCE:
        errors["created_at"] = "Must not be in the future."
    return moment


def _check_context(context: dict, errors: dict) -> None:
    try:
        encoded = orjson.dumps(context)
    except orjson.JSONEncodeError as error:  # only from Python callers (tasks): non-string keys, ...
        errors["context"] = f"Must be JSON: {error}."
        return
    if len(encoded) > MAX_CONTEXT_BYTES:
        errors["context"] = f"At most {MAX_CONTEXT_BYTES // 1024} KiB of JSON."
    # orjson writes NUL as \u0000: a cheap test on the bytes; the walk only runs to name the spot.
    elif b"\\u0000" in encoded:
        path = nul_path(context, "context")
        if path is not None:
            errors["context"] = f"{NUL_MESSAGE} Found in {path}."


def parse_record(item: Any, now: datetime) -> tuple[LogRecord | None, dict[str, str]]:
    """Validate one log object; returns the record or the field errors."""
    if not isinstance(item, dict):
        return None, {"non_field_errors": "Each log must be a JSON object."}
    errors: dict[str, str] = {}
    unknown = item.keys() - FIELDS
    if unknown:
        errors["non_field_errors"] = f"Unknown field(s): {', '.join(sorted(unknown)[:5])}."
    success = item.get("success")
    if not isinstance(success, bool):
        errors["success"] = "This field is required and must be true or false."
    elapsed = item.get("execution_time_ms")
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed):
        errors["execution_time_ms"] = "This field is required and must be a number."
        elapsed = 0
    elif not 0 <= elapsed <= MAX_EXECUTION_TIME_MS:
        errors["execution_time_ms"] = f"Must be between 0 and {MAX_EXECUTION_TIME_MS}."
    cost = item.get("cost_usd")
    if cost is None:
        cost = 0.0
    elif isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
        errors["cost_usd"] = "Must be a non-negative number."
        cost = 0.0
    context = item.get("context")
    if context is None:
        context = {}
    elif not isinstance(context, dict):
        errors["context"] = "Must be a JSON object."
    else:
        _check_context(context, errors)
    case_version = item.get("case_version")
    if case_version is not None and (
        isinstance(case_version, bool) or not isinstance(case_version, int) or not 1 <= case_version <= MAX_INT_COLUMN
    ):
        errors["case_version"] = f"Must be a whole number from 1 to {MAX_INT_COLUMN}."

    record = LogRecord(
        id=_uuid(item.get("id"), "id", errors) or uuid7(),
        case_id=_uuid(item.get("case_id"), "case_id", errors),
        case_version=case_version,
        session_id=_uuid(item.get("session_id"), "session_id", errors),
        success=bool(success),
        error_type=_text(item.get("error_type"), "error_type", errors, max_length=MAX_TEXT),
        error_message=_text(item.get("error_message"), "error_message", errors, max_length=MAX_ERROR_MESSAGE),
        execution_time_ms=round(elapsed),
        tokens_in=_count(item.get("tokens_in"), "tokens_in", errors),
        tokens_out=_count(item.get("tokens_out"), "tokens_out", errors),
        cost_usd=float(cost),
        model=_text(item.get("model"), "model", errors, max_length=MAX_TEXT),
        context=context,
        created_at=_timestamp(item.get("created_at"), errors, now),
    )
    return (None, errors) if errors else (record, {})


def parse_payload(payload: Any) -> list[LogRecord]:
    """A request's logs, validated: one object or a list, decoded (`LogBatchParser`) or not."""
    if isinstance(payload, TypedBatch):
        records = _finish_typed(payload.logs)
        if records is not None:
            _raise_if_invalid(records, {}, len(records))
            return records
        payload = orjson.loads(payload.body)  # it decoded once already: valid JSON
    return parse_batch(payload if isinstance(payload, list) else [payload])


def parse_batch(items: list[Any]) -> list[LogRecord]:
    """Validate a batch against the payload rules and the case bank; all or nothing."""
    if not items:
        raise InvalidInput("Send one log object or a non-empty list of them.")
    if len(items) > MAX_BATCH:
        raise InvalidInput(
            f"A batch holds at most {MAX_BATCH} logs; this one has {len(items)}. Split it.",
            errors={"non_field_errors": [f"At most {MAX_BATCH} logs per request."]},
        )
    now = timezone.now()
    records: list[LogRecord] = []
    errors: dict[str, dict[str, str]] = {}
    for index, item in enumerate(items):
        record, record_errors = parse_record(item, now)
        if record is None:
            errors[str(index)] = record_errors
        else:
            records.append(record)
    _raise_if_invalid(records, errors, len(items))
    return records


def _raise_if_invalid(records: list[LogRecord], errors: dict[str, dict[str, str]], sent: int) -> None:
    if not errors:
        _check_references(records, errors)
    if errors:
        shown = dict(list(errors.items())[:MAX_REPORTED_ERRORS])
        raise InvalidInput(f"{len(errors)} of {sent} logs are invalid; nothing was stored.", errors=shown)


def _finish_typed(records: list[LogRecord]) -> list[LogRecord] | None:
    """Settle decoded records as parse_record would (ids, times, rounding) and make the
    checks msgspec cannot; None as soon as one fails (parse_record then names every problem)."""
    now = timezone.now()
    latest = now + FUTURE_TOLERANCE
    for record in records:
        created_at = record.created_at
        if created_at is None:
            record.created_at = now
        else:
            if created_at.tzinfo is None:
                created_at = record.created_at = created_at.replace(tzinfo=dt_timezone.utc)
            try:
                if not EARLIEST_CREATED_AT <= created_at <= latest:
                    return None
            except OverflowError:  # year 1 with a positive offset is before year 1 in UTC
                return None
        if type(record.execution_time_ms) is float:
            record.execution_time_ms = round(record.execution_time_ms)
        if record.context and len(orjson.dumps(record.context)) > MAX_CONTEXT_BYTES:
            return None
    return records


def parse_each(items: list[Any]) -> tuple[list[LogRecord], dict[int, dict[str, str]]]:
    """Validate items one by one, for callers that store what they can (the import command,
    the background write): the valid records, each id once, and the errors by item index."""
    now = timezone.now()
    parsed: list[tuple[int, LogRecord]] = []
    errors: dict[int, dict[str, str]] = {}
    seen: set[uuid.UUID] = set()
    for index, item in enumerate(items):
        record, record_errors = parse_record(item, now)
        if record is None:
            errors[index] = record_errors
        elif record.id not in seen:
            seen.add(record.id)
            parsed.append((index, record))
    kept, refused = check_references_each([record for _, record in parsed])
    for position, problem in refused.items():
        errors[parsed[position][0]] = problem
    return kept, errors


def check_references_each(records: list[LogRecord]) -> tuple[list[LogRecord], dict[int, dict[str, str]]]:
    """`_check_references` one record at a time, for callers that store what they can (the
    import command, the background write, OTLP): the records that pass, in order, and the
    problems by position. Fills in each kept record's case version as the all-or-nothing path does."""
    refused: dict[str, dict[str, str]] = {}
    _check_references(records, refused)
    kept = [record for position, record in enumerate(records) if str(position) not in refused]
    return kept, {int(position): problem for position, problem in refused.items()}


def _check_references(records: list[LogRecord], errors: dict[str, dict[str, str]]) -> None:
    """Unknown cases, versions past the case's current one, and repeated ids are refused.

    UUIDs are keyed by their `.int` here: `UUID.__hash__` is Python code, and this runs for
    every log of every batch.
    """
    ids = [record.id.int for record in records]
    if len(set(ids)) != len(ids):
        first: dict[int, int] = {}
        for index, key in enumerate(ids):
            if key in first:
                errors[str(index)] = {"id": f"Repeats the id of log {first[key]} in this batch."}
            first.setdefault(key, index)
    cases = {record.case_id.int: record.case_id for record in records if record.case_id is not None}
    if not cases:
        return
    found = Case.objects.filter(**ids_lookup("pk", list(cases.values()))).values_list("id", "version")
    versions = {case_id.int: version for case_id, version in found}
    # Experiments matter only to logs without a version or past the current one (a candidate's
    # runs): one more query per batch then, none for a batch of current-version logs.
    needed = any(
        record.case_id is not None and (record.case_version is None or record.case_version > versions.get(record.case_id.int, 0))
        for record in records
    )
    running, newest = _experiments_of(cases) if needed else ({}, {})
    for index, record in enumerate(records):
        if record.case_id is None:
            continue
        current = versions.get(record.case_id.int)
        if current is None:
            errors[str(index)] = {"case_id": f"No case with id {record.case_id}."}
        elif record.case_version is None:
            record.case_version = attributed_version(record, current=current, experiment=running.get(record.case_id.int))
        elif record.case_version > max(current, newest.get(record.case_id.int, 0)):
            errors[str(index)] = {"case_version": f"The case is only at version {current}."}


def _experiments_of(cases: dict[int, uuid.UUID]) -> tuple[dict[int, RunningExperiment], dict[int, int]]:
    """The running experiment of each case and the newest candidate version each ever had
    (a candidate's late logs stay valid after its experiment ended), keyed by `UUID.int`."""
    running: dict[int, RunningExperiment] = {}
    newest: dict[int, int] = {}
    rows = Experiment.objects.filter(**ids_lookup("case_id", list(cases.values()))).values_list(
        "pk", "case_id", "status", "base_version", "candidate_version", "candidate_share")
    for pk, case_id, status, base, candidate, share in rows:
        key = case_id.int
        newest[key] = max(newest.get(key, 0), candidate)
        if status == ExperimentStatus.RUNNING:
            running[key] = RunningExperiment(id=pk, case_id=str(case_id), base_version=base,
                                             candidate_version=candidate, candidate_share=share)
    return running, newest


def logs_ingest(*, records: list[LogRecord], api_key_id: int | None = None) -> IngestResult:
    """Store validated records once each; returns every id with how many were new.

    `api_key_id`: the key the logs belong to (the sender, or the key that started the session),
    one value for the whole batch; `None` for logs no key owns (imports)."""
    ids = [record.id for record in records]
    if not records:
        return IngestResult(ids=ids, created=0)
    # _insert_postgresql bounds its statements with SET LOCAL, which outlives a savepoint: inside
    # a caller's transaction, put the caller's timeout back afterwards.
    outer_timeout = _statement_timeout() if connection.vendor == "postgresql" and connection.in_atomic_block else None
    try:
        with transaction.atomic():
            created = (
                _insert_postgresql(records, all_new=True, api_key_id=api_key_id) if connection.vendor == "postgresql"
                else _insert_portable(records, api_key_id=api_key_id)
            )
            if created:
                _note_new_logs(records)
    except UniqueViolation:  # an id is stored already (a re-sent batch, a racing request): again, skipping those
        with transaction.atomic():
            created = _insert_postgresql(records, all_new=False, api_key_id=api_key_id)
            if created:
                _note_new_logs(records)
    if outer_timeout is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [outer_timeout])
    return IngestResult(ids=ids, created=created)


def _statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def _note_new_logs(records: list[LogRecord]) -> None:
    """Feed the early-reflection counters (cache, two round trips); runs are queued on commit.

    A partly re-sent batch counts all its records: the counter only decides when to start an
    early run, so a few extra counts are harmless and cheaper than finding which were new.
    """
    from reflection.analysis.early_trigger import note_new_logs

    per_case = Counter(record.case_id.int for record in records if record.case_id is not None)  # .int: see _check_references
    note_new_logs(counts={uuid.UUID(int=key): count for key, count in per_case.items()})


_COLUMNS = (
    "id, case_id, case_version, session_id, success, error_type, error_message, error_template, "
    "execution_time_ms, tokens_in, tokens_out, cost_usd, model, context, created_at, api_key_id"
)
_COPY_TYPES = [
    "uuid", "uuid", "int4", "uuid", "bool", "text", "text", "text",
    "int4", "int4", "int4", "float8", "text", "jsonb", "timestamptz", "int8",
]


def error_template(record: LogRecord) -> str | None:
    """What analyses group a failure's message by (see `ExecutionLog.error_template`)."""
    return message_template(record.error_message) if not record.success and record.error_message else None


def copy_with_orjson(cursor: Any) -> Any:
    """The psycopg cursor behind Django's (which has no COPY), dumping json/jsonb values with
    orjson: ~10x faster than the json module psycopg uses, for a dict per row."""
    raw = cursor.cursor
    set_json_dumps(orjson.dumps, context=raw)
    return raw


def _insert_postgresql(records: list[LogRecord], *, all_new: bool, api_key_id: int | None) -> int:
    # Binary COPY straight into the table: about three times faster than staging the rows and
    # `INSERT ... ON CONFLICT`, whose speculative insertion doubles the primary-key work. So the
    # first attempt assumes every id is new; a stored one fails that COPY as a whole (and rolls
    # its transaction back), and the second attempt (all_new=False) stages the rows and skips the
    # stored ids, also when two requests race with the same ids. `ingested_at` is left to the
    # column's default, STATEMENT_TIMESTAMP() (the settle invariant above).
    table = ExecutionLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = {INGEST_STATEMENT_TIMEOUT_MS}")
        if all_new:
            _copy(cursor, table, records, api_key_id)
            return len(records)
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS log_ingest_stage (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        _copy(cursor, "log_ingest_stage", records, api_key_id)
        # (Temp tables need session pooling, not PgBouncer transaction pooling: docs/scaling.md.)
        cursor.execute(
            f"INSERT INTO {table} ({_COLUMNS}) SELECT {_COLUMNS} FROM log_ingest_stage ON CONFLICT (id) DO NOTHING"
        )
        created = cursor.rowcount
        cursor.execute("TRUNCATE log_ingest_stage")
        return created


def _copy(cursor: Any, table: str, records: list[LogRecord], api_key_id: int | None) -> None:
    raw = copy_with_orjson(cursor)  # contexts go in as plain dicts
    with raw.copy(f"COPY {table} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_COPY_TYPES)
        for r in records:
            copy.write_row(
                (
                    r.id, r.case_id, r.case_version, r.session_id, r.success, r.error_type,
                    r.error_message, error_template(r), r.execution_time_ms, r.tokens_in, r.tokens_out, r.cost_usd,
                    r.model, r.context, r.created_at, api_key_id,
                )
            )


def _insert_portable(records: list[LogRecord], *, api_key_id: int | None) -> int:
    existing = set(
        ExecutionLog.objects.filter(pk__in=[r.id for r in records]).values_list("id", flat=True)
    )
    now = timezone.now()  # just before the insert (the settle invariant above)
    new = []
    for r in records:
        if r.id in existing:
            continue
        assert r.created_at is not None, "records are settled (parse_record, _finish_typed) before storing"
        new.append(ExecutionLog(
            id=r.id,
            case_id=r.case_id,
            case_version=r.case_version,
            session_id=r.session_id,
            success=r.success,
            error_type=r.error_type,
            error_message=r.error_message,
            error_template=error_template(r),
            execution_time_ms=r.execution_time_ms,
            tokens_in=r.tokens_in,
            tokens_out=r.tokens_out,
            cost_usd=r.cost_usd,
            model=r.model,
            context=r.context,
            created_at=r.created_at,
            api_key_id=api_key_id,
            ingested_at=now,
        ))
    ExecutionLog.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
    return len(new)
