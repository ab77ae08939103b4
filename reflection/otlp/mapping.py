"""Spans -> runs: which spans are runs, and what each run's log holds (docs/otlp.md).

A run is a root span (no parent id) or an agent invocation (`gen_ai.operation.name` =
invoke_agent, OpenInference kind AGENT). Every other span belongs to its nearest run ancestor
in the same export request. A run's usage (tokens, cost) is its own when its span reports one
(frameworks that record the agent's total there); otherwise the sum over the outermost spans
below it that report one, not crossing into a nested run, so that no token is counted twice.

Only the spans of one request are seen: a child exported in an earlier request than its run
(the SDK exports spans as they end, children first) is not added to it. With the SDK's batch
processor a small agent's spans nearly always travel together; docs/otlp.md says how to make sure.
"""
from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from reflection.logs.decoding import LogRecord
from reflection.logs.ids import uuid7_derived
from reflection.logs.limits import (
    EARLIEST_CREATED_AT,
    FUTURE_TOLERANCE,
    MAX_ERROR_MESSAGE,
    MAX_EXECUTION_TIME_MS,
    MAX_INT_COLUMN,
    MAX_TEXT,
)
from reflection.otlp import attributes as names

MAX_SPAN_NAME = 200  # kept in the log's context, beside the trace and span ids
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
_ERROR = Status.STATUS_CODE_ERROR
_EARLIEST_NS = int((EARLIEST_CREATED_AT - _EPOCH).total_seconds()) * 1_000_000_000
_USAGE_KEYS = frozenset({*names.INPUT_TOKENS, *names.OUTPUT_TOKENS, *names.COST_USD})
_MODEL_KEYS = frozenset(names.MODEL)
_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


class _Composite:
    """An array, key-value list or bytes where a scalar was expected: fails every check."""


_COMPOSITE = _Composite()


@dataclass(slots=True, eq=False)
class _Node:
    span: Span
    attrs: dict[str, Any]
    resource: dict[str, Any]
    parent_key: bytes | None
    is_run: bool
    usage: tuple[int, int, float] | None = None
    problems: list[str] | None = None
    # Filled by _resolve: the nearest run at or above, and whether a span between (or the run)
    # already reports usage for this one.
    owner: _Node | None = None
    shadowed: bool = False
    resolved: bool = False
    # For runs only.
    spans: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    model: str = ""
    model_weight: int = -1

    def problem(self, message: str) -> None:
        if self.problems is None:
            self.problems = []
        self.problems.append(message)


@dataclass
class Runs:
    """What a request maps to: valid records (with the spans each stands for) and the refused."""

    records: list[LogRecord] = field(default_factory=list)
    record_spans: list[int] = field(default_factory=list)
    rejected_spans: int = 0
    problems: list[str] = field(default_factory=list)
    runs: int = 0


def runs_from_request(
    request: ExportTraceServiceRequest, *, now: datetime, agent_cases: Mapping[str, str]
) -> Runs:
    nodes, order = _collect(request)
    for node in order:
        _resolve(node, nodes)
    runs: list[_Node] = []
    for node in order:
        owner = node.owner
        if owner is None:
            continue  # below a run exported in another request (module docstring)
        if owner is node:
            runs.append(node)
        owner.spans += 1
        # A bad usage value refuses its run, unless a span above already reports the usage.
        if node.problems and owner is not node and not node.shadowed:
            for problem in node.problems:
                owner.problem(f"{problem} (span {node.span.name[:80]!r})")
        counted = node.usage is not None and not node.shadowed
        if counted:
            assert node.usage is not None
            owner.tokens_in += node.usage[0]
            owner.tokens_out += node.usage[1]
            owner.cost += node.usage[2]
        # Below the run, the model that did most of the work (the run's own wins: _record).
        model = _model(node) if node is not owner and not _MODEL_KEYS.isdisjoint(node.attrs) else ""
        if model:
            weight = node.usage[0] + node.usage[1] if counted and node.usage else 0
            if weight > owner.model_weight:
                owner.model, owner.model_weight = model, weight
    result = Runs(runs=len(runs))
    latest = now + FUTURE_TOLERANCE
    for run in runs:
        run.owner = None  # owner is itself: drop the cycle, so refcounting frees the nodes, not the GC
        record = _record(run, latest=latest, agent_cases=agent_cases)
        if record is None:
            result.rejected_spans += run.spans
            result.problems.append(f"span {_span_ref(run.span)}: {'; '.join(run.problems or ())}")
        else:
            result.records.append(record)
            result.record_spans.append(run.spans)
    return result


def _collect(request: ExportTraceServiceRequest) -> tuple[dict[bytes, _Node], list[_Node]]:
    nodes: dict[bytes, _Node] = {}
    order: list[_Node] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes, names.RESOURCE_KEYS)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = span.trace_id
                key = trace_id + span.span_id
                if key in nodes:
                    continue  # the same span twice in one request: one run
                attrs = _attributes(span.attributes, names.SPAN_KEYS)
                parent = span.parent_span_id
                node = _Node(
                    span=span,
                    attrs=attrs,
                    resource=resource,
                    parent_key=trace_id + parent if parent else None,
                    is_run=not parent
                    or attrs.get(names.OPERATION) == names.INVOKE_AGENT
                    or attrs.get(names.OPENINFERENCE_KIND) == names.OPENINFERENCE_AGENT,
                )
                if not _USAGE_KEYS.isdisjoint(attrs):
                    _read_usage(node)
                nodes[key] = node
                order.append(node)
    return nodes, order


def _attributes(key_values: Iterable[Any], wanted: frozenset[str]) -> dict[str, Any]:
    # The per-span cost of ingestion (benchmark: bench_otlp): one pass, nothing but lookups.
    found: dict[str, Any] = {}
    for key_value in key_values:
        key = key_value.key
        if key in wanted:
            value = key_value.value
            kind = value.WhichOneof("value")
            if kind is not None:
                found[key] = getattr(value, kind) if kind in _SCALARS else _COMPOSITE
    return found


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:
        if key in attrs:
            return key, attrs[key]
    return None


def _read_usage(node: _Node) -> None:
    attrs = node.attrs
    tokens_in = _first(attrs, names.INPUT_TOKENS)
    tokens_out = _first(attrs, names.OUTPUT_TOKENS)
    cost = _first(attrs, names.COST_USD)
    if tokens_in is None and tokens_out is None and cost is None:
        return
    node.usage = (_count(node, tokens_in), _count(node, tokens_out), _cost(node, cost))


def _count(node: _Node, found: tuple[str, Any] | None) -> int:
    if found is None:
        return 0
    key, value = found
    if type(value) is float and math.isfinite(value) and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_INT_COLUMN:
        node.problem(f"{key} must be a whole number from 0 to {MAX_INT_COLUMN}")
        return 0
    return value


def _cost(node: _Node, found: tuple[str, Any] | None) -> float:
    if found is None:
        return 0.0
    key, value = found
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        node.problem(f"{key} must be a non-negative number (USD)")
        return 0.0
    return float(value)


def _model(node: _Node) -> str:
    found = _first(node.attrs, names.MODEL)
    return found[1] if found is not None and isinstance(found[1], str) else ""


def _resolve(node: _Node, nodes: dict[bytes, _Node]) -> None:
    """Set owner and shadowed on `node` and the ancestors on its way up, each once (iterative:
    a deep chain of spans must not exhaust the stack; a cycle of parent ids ends the walk)."""
    path: list[_Node] = []
    on_path: set[int] = set()
    current = node
    while not current.resolved:
        parent = nodes.get(current.parent_key) if current.parent_key is not None else None
        if parent is None or id(parent) in on_path or parent is current:
            # The top of what this request holds: a root, or a span whose parent is elsewhere.
            current.owner = current if current.is_run else None
            current.resolved = True
            break
        path.append(current)
        on_path.add(id(current))
        current = parent
    for child in reversed(path):
        if child.resolved:
            continue
        parent = nodes[child.parent_key]  # type: ignore[index]  # on the path: it has one
        if child.is_run:
            child.owner = child
        else:
            child.owner = parent.owner
            child.shadowed = parent.shadowed or parent.usage is not None
        child.resolved = True


def _record(run: _Node, *, latest: datetime, agent_cases: Mapping[str, str]) -> LogRecord | None:
    span = run.span
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or len(span_id) != 8 or not any(trace_id) or not any(span_id):
        run.problem("a span needs a 16-byte trace id and an 8-byte span id, not all zero")
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    elapsed_ms = 0
    created_at = latest
    if not start or end < start:
        run.problem("start_time_unix_nano must be set and not after end_time_unix_nano")
    else:
        elapsed_ms = round((end - start) / 1_000_000)
        if elapsed_ms > MAX_EXECUTION_TIME_MS:
            run.problem(f"the span lasted more than {MAX_EXECUTION_TIME_MS // 3_600_000} hours")
        # Compared as nanoseconds first: a fixed64 start near 2**64 is past datetime's year 9999.
        if not _EARLIEST_NS <= start <= _nanoseconds(latest):
            run.problem(f"the span must start between {EARLIEST_CREATED_AT:%Y-%m-%d} and now")
        else:
            created_at = _EPOCH + timedelta(microseconds=start // 1_000)
    if run.tokens_in > MAX_INT_COLUMN or run.tokens_out > MAX_INT_COLUMN:
        run.problem(f"the run's tokens add up to more than {MAX_INT_COLUMN}")
    if not math.isfinite(run.cost):
        run.problem("the run's costs add up to more than a float holds")
    case_id, case_version = _case(run, agent_cases)
    session_id = _uuid(run, names.SESSION_ID)
    if run.problems:
        return None

    attrs = run.attrs
    error_type = attrs.get(names.ERROR_TYPE)
    failed = span.status.code == _ERROR or bool(error_type)
    error_message = span.status.message if failed else ""
    if failed and (not error_type or not error_message):
        exception = _exception(span)
        error_type = error_type or exception.get(names.EXCEPTION_TYPE)
        error_message = error_message or exception.get(names.EXCEPTION_MESSAGE) or ""
    agent = _first(attrs, names.AGENT_NAME)
    context: dict[str, Any] = {
        "otlp": {"trace_id": trace_id.hex(), "span_id": span_id.hex(), "span": _text(span.name, MAX_SPAN_NAME)}
    }
    if agent is not None and isinstance(agent[1], str):
        context["otlp"]["agent"] = _text(agent[1], MAX_TEXT)
    return LogRecord(
        id=uuid7_derived(millis=start // 1_000_000, key=trace_id + span_id),
        case_id=case_id,
        case_version=case_version,
        session_id=session_id,
        success=not failed,
        error_type=_text(error_type if isinstance(error_type, str) else "", MAX_TEXT),
        error_message=_text(error_message if isinstance(error_message, str) else "", MAX_ERROR_MESSAGE),
        execution_time_ms=elapsed_ms,
        tokens_in=run.tokens_in,
        tokens_out=run.tokens_out,
        cost_usd=run.cost,
        model=_text(_model(run) or run.model, MAX_TEXT),
        context=context,
        created_at=created_at,
    )


def _case(run: _Node, agent_cases: Mapping[str, str]) -> tuple[uuid.UUID | None, int | None]:
    case_id = _uuid(run, names.CASE_ID)
    if case_id is None and names.CASE_ID not in run.attrs and names.CASE_ID not in run.resource and agent_cases:
        agent = _first(run.attrs, names.AGENT_NAME)
        name = agent[1] if agent is not None else run.resource.get(names.SERVICE_NAME)
        mapped = agent_cases.get(name) if isinstance(name, str) else None
        if mapped is not None:
            try:
                case_id = uuid.UUID(mapped)
            except ValueError:
                run.problem(f"OTLP_AGENT_CASES maps {name!r} to {mapped!r}, which is not a case id")
    version = run.attrs.get(names.CASE_VERSION, run.resource.get(names.CASE_VERSION))
    if version is None:
        return case_id, None
    if type(version) is str and version.isdigit():
        version = int(version)
    if type(version) is not int or not 1 <= version <= MAX_INT_COLUMN:
        run.problem(f"{names.CASE_VERSION} must be a whole number from 1 to {MAX_INT_COLUMN}")
        return case_id, None
    return case_id, version


def _uuid(run: _Node, key: str) -> uuid.UUID | None:
    value = run.attrs.get(key, run.resource.get(key))
    if value is None:
        return None
    parsed = _parse_uuid(value) if isinstance(value, str) else None
    if parsed is None:
        run.problem(f"{key} must be a UUID string")
    return parsed


@functools.lru_cache(maxsize=4096)
def _parse_uuid(value: str) -> uuid.UUID | None:
    """Memoised: an export names the same few cases on every run."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _exception(span: Span) -> dict[str, Any]:
    """The attributes of the span's last exception event (the one that ended it)."""
    found: dict[str, Any] = {}
    for event in span.events:
        if event.name == names.EXCEPTION_EVENT:
            found = _attributes(event.attributes, frozenset({names.EXCEPTION_TYPE, names.EXCEPTION_MESSAGE}))
    return found


def _text(value: str, limit: int) -> str:
    """Telemetry is stored, not refused, for an overlong or odd string: cut it, drop NULs
    (PostgreSQL text cannot hold them)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit]


def _nanoseconds(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _span_ref(span: Span) -> str:
    return f"{span.trace_id.hex() or '(no trace id)'}/{span.span_id.hex() or '(no span id)'}"
