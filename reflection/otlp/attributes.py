"""The span and resource attributes a run is read from, with the peers' variants (docs/otlp.md).

Each tuple is tried in order on a span; the OpenTelemetry GenAI semantic conventions come first.
"""
from __future__ import annotations

# Which operation a span is: invoke_agent marks a run; chat, text_completion, generate_content an LLM call.
OPERATION = "gen_ai.operation.name"
INVOKE_AGENT = "invoke_agent"
# OpenInference (Arize Phoenix) marks the kind of every span; AGENT is its invoke_agent.
OPENINFERENCE_KIND = "openinference.span.kind"
OPENINFERENCE_AGENT = "AGENT"

INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
COST_USD = ("gen_ai.usage.cost", "llm.cost.total")
MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
AGENT_NAME = ("gen_ai.agent.name", "agent.name")
ERROR_TYPE = "error.type"

# Ours; on the run span or on the resource (every span of one process).
CASE_ID = "caseloop.case.id"
CASE_VERSION = "caseloop.case.version"
SESSION_ID = "caseloop.session.id"
SERVICE_NAME = "service.name"

# The exception event (OpenTelemetry exception semantic conventions).
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"

# Every span attribute the mapping reads, looked up once per attribute.
SPAN_KEYS = frozenset(
    {OPERATION, OPENINFERENCE_KIND, ERROR_TYPE, CASE_ID, CASE_VERSION, SESSION_ID,
     *INPUT_TOKENS, *OUTPUT_TOKENS, *COST_USD, *MODEL, *AGENT_NAME}
)
RESOURCE_KEYS = frozenset({CASE_ID, CASE_VERSION, SESSION_ID, SERVICE_NAME})
