"""Quality scores 0..1 per agent: LLM-as-judge when configured, heuristics otherwise."""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field

from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from agents.runtime import llm
from agents.runtime.llm import BudgetListener, LLMError, LLMResult, llm_client
from agents.tools.vision import VISION
from agents.tools.workers import DATA_ANALYSIS, INFORMATION_RETRIEVAL, AgentOutput
from reflection.llm.steps import Steps

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
    if agent == VISION:
        return 0.8 if data.get("answer") else 0.0  # the model read the images and answered
    return 0.5


def evaluate_steps(*, query: str, outputs: dict[str, AgentOutput], deadline: float | None = None,
                   listener: BudgetListener | None = None) -> Steps[Evaluation]:
    """Scores per agent; the LLM judge (if any) must answer before `deadline` (`time.monotonic()`),
    the session's, or the heuristic scores stand."""
    threshold = settings.QUALITY_THRESHOLD
    scores = {agent: round(heuristic_score(agent, output), 4) for agent, output in outputs.items()}
    method, answer, notes = "heuristic", None, []
    judged = {agent: output for agent, output in outputs.items() if output.ok}
    client = llm_client()
    budget = float(settings.AGENTS_AGENT_TIMEOUT_S)
    if client is not None and judged:
        try:
            answer = yield from llm.json_steps(
                name="judge", messages=_judge_messages(query, judged), schema=JUDGE_SCHEMA, total_timeout=budget,
                deadline=deadline, listener=listener,
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
        data.pop("passages", None)  # the same text as the context
        shown[agent] = data
    content = (
        f"Request: {query}\nRate how well each agent's output serves the request, from 0 (useless) "
        f"to 1 (fully answers it). Outputs:\n{json.dumps(shown, default=str)[:12000]}\n"
        f'Answer as {{"scores": {{"<agent>": <0..1>}}, "rationale": "..."}}.'
    )
    return [{"role": "system", "content": "You judge the quality of agents' work."}, {"role": "user", "content": content}]


_CITATION = re.compile(r"\[(\d+)\]")
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?")


def _numbers(text: str) -> list[str]:
    return _NUMBER.findall(_CITATION.sub(" ", text))


def _as_float(token: str) -> float | None:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def _known_numbers(sources: list[dict], query: str) -> list[float]:
    known: list[float] = []
    for source in sources:
        for row in source.get("rows") or []:
            for cell in row if isinstance(row, (list, tuple)) else [row]:
                if isinstance(cell, bool):
                    continue
                if isinstance(cell, (int, float)) and math.isfinite(cell):
                    known.append(float(cell))
                elif isinstance(cell, str):
                    known.extend(v for v in map(_as_float, _numbers(cell)) if v is not None)
        known.extend(v for v in map(_as_float, _numbers(str(source.get("text") or ""))) if v is not None)
    known.extend(v for v in map(_as_float, _numbers(query)) if v is not None)
    return known


def _matches(token: str, known: list[float]) -> bool:
    value = _as_float(token)
    if value is None:
        return True
    decimals = len(token.split(".", 1)[1]) if "." in token else 0
    # "1234.6" matches a row's 1234.5678: the answer may round what it read, not invent.
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(value - number) <= tolerance or abs(abs(value) - abs(number)) <= tolerance for number in known)


def grounding_problems(answer: str, sources: list[dict], *, query: str = "") -> list[str]:
    """Why `answer` is not grounded in `sources` (`[{n, text?, rows?}]`); empty when it is.

    Every `[n]` must name a given source and the answer must cite at least one; every number in
    it must appear in the sources' rows or text (or the question), up to the answer's rounding."""
    problems = []
    numbers = {int(n) for n in _CITATION.findall(answer)}
    given = {int(s["n"]) for s in sources}
    unknown = sorted(numbers - given)
    if unknown:
        problems.append(f"cites sources that were not given: {', '.join(f'[{n}]' for n in unknown)}")
    if not numbers:
        problems.append("cites no source")
    known = _known_numbers(sources, query)
    invented = [token for token in _numbers(answer) if not _matches(token, known)]
    if invented:
        problems.append(f"numbers not in the sources: {', '.join(dict.fromkeys(invented))}")
    return problems
