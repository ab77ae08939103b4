"""The respond step: an answer a user can use, built only from what the agents returned.

Sources are numbered once per session: the SQL result first (when there is one), then the
retrieval worker's passages, so `[n]` means the same thing in the answer, the `sources` list and
the prompt.

- With an LLM: one final call writes the answer from those sources only, citing them as `[n]`,
  streamed piece by piece to `deltas` (the session turns them into `answer_delta` events). The
  evaluator's grounding check (`evaluation.grounding_problems`) must pass: every citation points
  at a given source, every number appears in the rows or passages. An answer that fails it, or
  an LLM that cannot be had, falls back to the extractive answer.
- Without an LLM: an extractive answer. The passage sentences that best match the query (BM25
  over the sentences of the retrieved passages, with the case bank's tokenizer and constants)
  plus the data summary, each cited. When nothing matches: "No answer found." and `found=False`.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from agents.runtime import llm
from agents.runtime.evaluation import grounding_problems
from agents.runtime.llm import BudgetExhausted, BudgetListener, LLMError, LLMResult
from agents.tools.vision import VISION
from agents.tools.workers import DATA_ANALYSIS, INFORMATION_RETRIEVAL, AgentOutput
from casebank.search.selectors import BM25_B, BM25_K1
from casebank.search.text import tokenize
from reflection.llm.steps import Steps
from reflection.llm.streaming import Collected, Deltas

NO_ANSWER = "No answer found."
MAX_SENTENCES = 3
# Rows shown to the answer model: enough for rankings and small tables, bounded for the prompt.
PROMPT_ROWS = 50
PROMPT_PASSAGE_CHARS = 2000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_MARKUP = re.compile(r"^\s*(#+|[-*+]|\d+[.)])\s+")


@dataclass
class Answer:
    text: str
    found: bool
    method: str  # llm | extractive
    sources: list[dict] = field(default_factory=list)  # the sources cited, with their number `n`
    llm: LLMResult | None = None
    problems: list[str] = field(default_factory=list)  # why an LLM answer was not used

    def summary(self) -> dict:
        return {"method": self.method, "found": self.found, "sources": self.sources, "problems": self.problems}


@dataclass
class Source:
    n: int
    type: str  # data | image | document | case
    id: str
    title: str
    text: str  # what the answer may use: rendered rows or the passage text
    numbers_from: Any = None  # rows (data) for the grounding check

    def public(self) -> dict:
        return {"n": self.n, "type": self.type, "id": self.id, "title": self.title}


def gather_sources(outputs: dict[str, AgentOutput]) -> list[Source]:
    sources: list[Source] = []
    data = outputs.get(DATA_ANALYSIS)
    if data is not None and data.ok and data.data.get("columns"):
        rows = data.data.get("rows") or []
        shown = {"columns": data.data["columns"], "rows": rows[:PROMPT_ROWS], "row_count": data.data.get("row_count", len(rows))}
        sources.append(Source(n=1, type="data", id=str(data.data.get("cache_key") or "sql"), title="SQL result",
                              text=json.dumps(shown, default=str), numbers_from=rows))
    seen = outputs.get(VISION)
    if seen is not None and seen.ok and seen.data.get("answer"):
        refs = seen.data.get("images") or [{}]
        sources.append(Source(n=len(sources) + 1, type="image", id=str(refs[0].get("sha256") or "images"),
                              title="The vision model's reading of the images", text=str(seen.data["answer"])))
    retrieval = outputs.get(INFORMATION_RETRIEVAL)
    if retrieval is not None and retrieval.ok:
        metas = retrieval.data.get("sources") or []
        for index, passage in enumerate(_passages(retrieval.data)):
            meta = metas[index] if index < len(metas) else {}
            sources.append(Source(n=len(sources) + 1, type=str(meta.get("type") or "document"),
                                  id=str(meta.get("id") or ""), title=passage["title"], text=passage["text"]))
    return sources


def _passages(data: dict) -> list[dict]:
    if isinstance(data.get("passages"), list):
        return [p for p in data["passages"] if isinstance(p, dict)]
    # Results stored before passages were kept apart: "[i] title\ntext" blocks.
    passages = []
    for block in re.split(r"\n\n(?=\[\d+\] )", str(data.get("context") or "")):
        head, _, text = block.partition("\n")
        if head:
            passages.append({"title": re.sub(r"^\[\d+\]\s*", "", head), "text": text})
    return passages


# -- extractive ------------------------------------------------------------------------------

def _stem(token: str) -> str:
    # "refunds" finds "refund": plural s only, enough for short English questions.
    return token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token


def _terms(text: str) -> list[str]:
    return [_stem(t) for t in tokenize(text)]


def sentences(text: str) -> list[str]:
    """Sentences of a passage: paragraphs joined across line breaks, markdown marks dropped."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [_MARKUP.sub("", line).strip() for line in paragraph.splitlines()]
        joined = " ".join(line for line in lines if line)
        for sentence in _SENTENCE_END.split(joined):
            sentence = sentence.strip()
            if len(sentence.split()) >= 4:
                found.append(sentence)
    return found


def best_sentences(query: str, sources: list[Source], *, limit: int = MAX_SENTENCES) -> list[tuple[str, Source]]:
    """The sentences that best match `query`, best first.

    BM25 over the sentences of the retrieved documents, where a sentence also carries its
    document's title (a sentence of "Refund policy" is about refunds even when it says "it"),
    weighted by the retrieval rank of its passage (the retriever already judged the passages).
    A sentence counts only if it (with its title) holds at least a third of the query's distinct
    terms, and at least one in its own text: a nonsense query sharing one common word finds none."""
    wanted = set(_terms(query))
    if not wanted:
        return []
    documents = [source for source in sources if source.type == "document"]
    candidates = [(s, source, _terms(s), set(_terms(source.title)), rank)
                  for rank, source in enumerate(documents) for s in sentences(source.text)]
    if not candidates:
        return []
    frequency: Counter[str] = Counter()
    for _, _, terms, title, _ in candidates:
        frequency.update(set(terms) | title)
    total = len(candidates)
    average = sum(len(terms) for _, _, terms, _, _ in candidates) / total or 1.0
    needed = max(1, math.ceil(len(wanted) / 3))
    scored = []
    for sentence, source, terms, title, rank in candidates:
        counts = Counter(terms)
        own = wanted & set(counts)
        if not own or len(own | (wanted & title)) < needed:
            continue
        score = 0.0
        for term in own | (wanted & title):
            idf = math.log(1 + (total - frequency[term] + 0.5) / (frequency[term] + 0.5))
            tf = counts[term] or 1  # a title term counts as one occurrence
            score += idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * len(terms) / average))
        scored.append((score / (1 + 0.15 * rank), sentence, source))
    scored.sort(key=lambda item: item[0], reverse=True)
    chosen, seen = [], set()
    for _, sentence, source in scored:
        if sentence not in seen:
            seen.add(sentence)
            chosen.append((sentence, source))
        if len(chosen) == limit:
            break
    return chosen


def extractive(query: str, outputs: dict[str, AgentOutput], sources: list[Source] | None = None) -> Answer:
    sources = gather_sources(outputs) if sources is None else sources
    parts: list[str] = []
    cited: dict[int, Source] = {}
    data = next((s for s in sources if s.type == "data"), None)
    if data is not None and data.numbers_from:
        parts.append(f"{outputs[DATA_ANALYSIS].data.get('summary', '')} [{data.n}]".strip())
        cited[data.n] = data
    image = next((s for s in sources if s.type == "image"), None)
    if image is not None:
        parts.append(f"{image.text} [{image.n}]")
        cited[image.n] = image
    for sentence, source in best_sentences(query, sources):
        parts.append(f"{sentence} [{source.n}]")
        cited[source.n] = source
    if not parts:
        return Answer(text=NO_ANSWER, found=False, method="extractive")
    listed = "\n".join(f"[{n}] {cited[n].title}" for n in sorted(cited))
    return Answer(text=" ".join(parts) + "\n\nSources:\n" + listed, found=True, method="extractive",
                  sources=[cited[n].public() for n in sorted(cited)])


# -- LLM -------------------------------------------------------------------------------------

def _answer_messages(query: str, sources: list[Source]) -> list[dict]:
    listed = "\n\n".join(f"[{s.n}] {s.title} ({s.type})\n{s.text[:PROMPT_PASSAGE_CHARS]}" for s in sources)
    return [
        {"role": "system", "content": (
            "You answer the user's question using ONLY the numbered sources given. Cite every claim "
            "with the source number in square brackets, like [1]. Copy numbers exactly as they appear "
            "in the sources; do not compute new ones. Be brief. If the sources do not answer the "
            f"question, reply exactly: {NO_ANSWER}"
        )},
        {"role": "user", "content": f"Question: {query}\n\nSources:\n{listed}"},
    ]


def compose_steps(
    *,
    query: str,
    outputs: dict[str, AgentOutput],
    deltas: Deltas | None = None,
    deadline: float | None = None,
    listener: BudgetListener | None = None,
) -> Steps[Answer]:
    """The session's answer: by the LLM when one is configured and its answer is grounded,
    else extractive (the reason is in `problems`). The LLM's pieces go to `deltas` as they come."""
    sources = gather_sources(outputs)
    fallback = extractive(query, outputs, sources)
    client = llm.llm_client()
    if client is None or not sources:
        return fallback
    try:
        result = yield from llm.stream_answer_steps(
            client, name="answer", messages=_answer_messages(query, sources), deltas=deltas or Collected(),
            total_timeout=float(settings.AGENTS_AGENT_TIMEOUT_S), deadline=deadline, listener=listener,
        )
    except BudgetExhausted as error:
        fallback.problems.append(str(error))
        return fallback
    except LLMError as error:
        fallback.problems.append(f"LLM answer failed, extractive answer used: {error}")
        return fallback
    text = str(result.data.get("text") or "").strip()
    if text.rstrip(".").lower() == NO_ANSWER.rstrip(".").lower():
        return Answer(text=NO_ANSWER, found=False, method="llm", llm=result)
    problems = grounding_problems(text, [s.public() | {"text": s.text, "rows": s.numbers_from} for s in sources], query=query)
    if problems:
        fallback.problems.extend(f"LLM answer not grounded, extractive answer used: {p}" for p in problems)
        fallback.llm = result
        return fallback
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text)})
    by_number = {s.n: s for s in sources}
    return Answer(text=text, found=True, method="llm", llm=result,
                  sources=[by_number[n].public() for n in cited if n in by_number])
