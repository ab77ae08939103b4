"""Quality scores 0..1 per agent: LLM-as-judge when configured, heuristics otherwise."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from agents.runtime.llm import LLMError, LLMResult, llm_client
from agents.tools.workers import DATA_ANALYSIS, INFORMATION_RETRIEVAL, AgentOutput

logger = logging.getLogger(__name__)
JUDGE_SCHEMA = {
    "type": "object",
    "required": ["scores"],
    "properties": {
        "scores": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}},
        "rationale": {"type": "string"},
    },
}


@dataclass
class Evaluation:
    scores: dict[str, float]
    passed: bool
    method: str  # llm | heuristic
    llm: LLMResult | None = None
    notes: list[str] = field(default_factory=list)


def heuristic_score(agent: str, output: AgentOutput) -> float:
    if not output.ok:
        return 0.0
    data = output.data
    if agent == DATA_ANALYSIS:
        if not data.get("rows"):
            return 0.3  # it ran, but an empty answer rarely answers a question
        return 0.9 if data.get("columns") else 0.5
    if agent == INFORMATION_RETRIEVAL:
        return max(0.0, min(1.0, float(data.get("confidence") or 0.0)))
    return 0.5


def evaluate(*, query: str, outputs: dict[str, AgentOutput], deadline: float | None = None) -> Evaluation:
    """Scores per agent; the LLM judge (if any) must answer before `deadline` (`time.monotonic()`),
    the session's, or the heuristic scores stand."""
    threshold = settings.QUALITY_THRESHOLD
    scores = {agent: round(heuristic_score(agent, output), 4) for agent, output in outputs.items()}
    method, answer, notes = "heuristic", None, []
    judged = {agent: output for agent, output in outputs.items() if output.ok}
    client = llm_client()
    budget = float(settings.AGENTS_AGENT_TIMEOUT_S)
    if deadline is not None:
        budget = min(budget, deadline - time.monotonic())
    if client is not None and judged:
        try:
            answer = client.complete_json(
                purpose="judge", messages=_judge_messages(query, judged), schema=JUDGE_SCHEMA, total_timeout=budget,
            )
            for agent in judged:
                if agent in answer.data["scores"]:
                    scores[agent] = round(float(answer.data["scores"][agent]), 4)
            method = "llm"
        except LLMError as error:
            notes.append(f"LLM judge failed, heuristics used: {error}")
        except Exception as error:  # a broken judge must not fail the session: heuristics stand
            logger.exception("LLM judge crashed")
            notes.append(f"LLM judge failed, heuristics used: {type(error).__name__}")
    passed = bool(scores) and all(score >= threshold for score in scores.values())
    return Evaluation(scores=scores, passed=passed, method=method, llm=answer, notes=notes)


def _judge_messages(query: str, outputs: dict[str, AgentOutput]) -> list[ChatCompletionMessageParam]:
    shown = {}
    for agent, output in outputs.items():
        data = dict(output.data)
        if "rows" in data:
            data["rows"] = data["rows"][:20]
        if "context" in data:
            data["context"] = str(data["context"])[:3000]
        shown[agent] = data
    content = (
        f"Request: {query}\nRate how well each agent's output serves the request, from 0 (useless) "
        f"to 1 (fully answers it). Outputs:\n{json.dumps(shown, default=str)[:12000]}\n"
        f'Answer as {{"scores": {{"<agent>": <0..1>}}, "rationale": "..."}}.'
    )
    return [{"role": "system", "content": "You judge the quality of agents' work."}, {"role": "user", "content": content}]
