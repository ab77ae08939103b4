"""OTLP trace export -> execution logs, through the same checks and COPY as POST /api/logs/."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from reflection.logs import services as ingestion
from reflection.logs.decoding import LogRecord
from reflection.otlp.decoding import refuse_too_many_spans
from reflection.otlp.mapping import runs_from_request

MAX_REPORTED_PROBLEMS = 5


@dataclass(frozen=True)
class ExportOutcome:
    spans: int
    runs: int
    created: int
    duplicates: int
    rejected_spans: int
    error_message: str


def traces_ingest(*, request: ExportTraceServiceRequest, api_key_id: int | None = None) -> ExportOutcome:
    """Store each run of the export once; runs that cannot be stored are reported, not raised
    (OTLP partial success), so the exporter does not retry what will never be accepted."""
    spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    refuse_too_many_spans(spans)  # checked before parsing for bodies; again for other callers
    runs = runs_from_request(request, now=timezone.now(), agent_cases=settings.OTLP_AGENT_CASES)
    kept, refused = ingestion.check_references_each(runs.records)
    rejected_spans, problems = runs.rejected_spans, runs.problems
    for position, errors in refused.items():
        rejected_spans += runs.record_spans[position]
        problems.append(f"span {_span_ref(runs.records[position])}: {'; '.join(errors.values())}")
    result = ingestion.logs_ingest(records=kept, api_key_id=api_key_id)  # the key owns its runs
    return ExportOutcome(
        spans=spans,
        runs=runs.runs,
        created=result.created,
        duplicates=result.duplicates,
        rejected_spans=rejected_spans,
        error_message=_summary(problems, runs.runs),
    )


def _span_ref(record: LogRecord) -> str:
    otlp = record.context["otlp"]
    return f"{otlp['trace_id']}/{otlp['span_id']}"


def _summary(problems: list[str], runs: int) -> str:
    if not problems:
        return ""
    shown = "; ".join(problem[:300] for problem in problems[:MAX_REPORTED_PROBLEMS])
    more = f"; and {len(problems) - MAX_REPORTED_PROBLEMS} more" if len(problems) > MAX_REPORTED_PROBLEMS else ""
    return f"{len(problems)} of {runs} runs refused: {shown}{more}."
