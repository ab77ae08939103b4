"""Worker agents. Each is a sequence of steps (its LLM call awaited on the session's event loop,
its blocking work in the workers' pool) and never raises.

`availability()` says whether the agent can take a step at all (the selector substitutes or
skips it otherwise); `run()` returns an `AgentOutput` with the result or the error.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypedDict

from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from agents import conf
from agents.metrics import agent_cache_lookup
from agents.runtime import llm
from agents.runtime.llm import BudgetListener, LLMError, llm_client
from agents.tools import analytics, retrieval, vision
from agents.tools.concurrency import AnalyticsBusy, analytics_slot
from agents.tools.sql_guard import PROMPT_RULES, SqlRefused, check_sql
from casebank.search import embeddings
from core.cache import layered_get, layered_set
from reflection.llm.steps import Blocking, Steps, run_sync

DATA_ANALYSIS = "data_analysis"
INFORMATION_RETRIEVAL = "information_retrieval"
CACHE_SECONDS = 300
NO_LLM_MESSAGE = (
    "Text2SQL needs an LLM and none is configured (set OPENAI_API_KEY and LLM_MODEL); "
    "pass the SQL directly instead."
)


@dataclass
class AgentTask:
    query: str
    actions: list[str] = field(default_factory=list)
    sql: str = ""
    iteration: int = 1
    feedback: str = ""
    # Hears when the LLM budget makes this task wait (the session records it).
    listener: BudgetListener | None = field(default=None, compare=False, repr=False)
    # The API key the work is done for: its analytics queries share its concurrency limit.
    api_key_id: object = None
    # Seconds to wait for a concurrency slot; None: ANALYTICS_SLOT_WAIT_S (the API passes 0).
    slot_wait_s: float | None = None
    # The session's images (vision agent), loaded from the cache for the run; never stored.
    images: list[vision.Image] = field(default_factory=list, compare=False, repr=False)


@dataclass
class AgentOutput:
    ok: bool
    data: dict = field(default_factory=dict)
    error: str = ""
    error_type: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    model: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class _Usage(TypedDict):
    """The LLM usage fields of an `AgentOutput`."""

    tokens_in: int
    tokens_out: int
    cost_usd: float
    model: str


class Agent:
    name = ""

    def availability(self, task: AgentTask) -> str | None:
        """None when the agent can run the task, else why not."""
        return None

    # An agent overrides `steps` when it calls the LLM, else `run` (one piece of blocking work).

    def steps(self, task: AgentTask) -> Steps[AgentOutput]:
        """The work as steps (`reflection.llm.steps`): a session awaits its LLM calls on the
        runner's loop and runs the rest (`Blocking`: SQL, search) in the workers' pool."""
        output: AgentOutput = yield Blocking(partial(self.run, task))
        return output

    def run(self, task: AgentTask) -> AgentOutput:
        """`steps` run in this thread (the REST agents)."""
        return run_sync(self.steps(task))


TEXT2SQL_SCHEMA = {
    "type": "object",
    "required": ["sql"],
    "properties": {"sql": {"type": "string", "minLength": 1}, "explanation": {"type": "string"}},
}


class DataAnalysisAgent(Agent):
    """Text2SQL (or caller SQL) over the analytics database, through `agents.tools.sql_guard`."""

    name = DATA_ANALYSIS

    def availability(self, task: AgentTask) -> str | None:
        if task.sql or llm_client() is not None:
            return None
        return NO_LLM_MESSAGE

    def steps(self, task: AgentTask) -> Steps[AgentOutput]:
        usage: _Usage = {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "model": ""}
        sql, explanation = task.sql, ""
        if not sql:
            if llm_client() is None:
                return AgentOutput(ok=False, error=NO_LLM_MESSAGE, error_type="LLMUnavailable")
            try:
                messages = yield Blocking(partial(self._messages, task))  # reads the analytics schema
                # The execution manager enforces the agent's time budget; the client keeps its own.
                answer = yield from llm.json_steps(name="text2sql", messages=messages, schema=TEXT2SQL_SCHEMA,
                                                   listener=task.listener)
            except LLMError as error:
                return AgentOutput(ok=False, error=str(error), error_type=type(error).__name__)
            sql, explanation = answer.data["sql"], answer.data.get("explanation", "")
            usage = {"tokens_in": answer.tokens_in, "tokens_out": answer.tokens_out, "cost_usd": answer.cost_usd,
                     "model": answer.model}
        output: AgentOutput = yield Blocking(partial(self._answer, task, sql, explanation, usage))
        return output

    def _answer(self, task: AgentTask, sql: str, explanation: str, usage: _Usage) -> AgentOutput:
        """Run `sql` (guarded, cached) and say what came of it."""
        try:
            # In a session (the runtime's threads, not a web worker) a busy limit is waited for.
            wait_s = float(settings.ANALYTICS_SLOT_WAIT_S) if task.slot_wait_s is None else task.slot_wait_s
            data = self.query(sql, key_id=task.api_key_id, wait_s=wait_s)
        except AnalyticsBusy as error:
            return AgentOutput(ok=False, error=str(error), error_type="AnalyticsBusy", data={"sql": sql}, **usage)
        except SqlRefused as error:
            return AgentOutput(ok=False, error=f"SQL refused: {error}", error_type="SQLRefused", data={"sql": sql}, **usage)
        except analytics.AnalyticsError as error:
            return AgentOutput(ok=False, error=str(error), error_type="SQLError", data={"sql": sql}, **usage)
        data["explanation"] = explanation
        return AgentOutput(ok=True, data=data, **usage)

    @staticmethod
    def query(sql: str, *, key_id: object = None, wait_s: float = 0.0) -> dict:
        """Guarded, cached execution; the dict is what the API and the session store.

        A query that is not cached runs in a concurrency slot of `key_id` and a global one
        (`agents.tools.concurrency`), waiting up to `wait_s` for them, else `AnalyticsBusy`.

        Results go to the layered cache (core.cache): this process's memory answers a
        repeat without a network hop, the shared Redis answers it on every other replica and
        qcluster worker for `CACHE_SECONDS`.
        """
        url = conf.analytics_database_url()
        checked = check_sql(sql, allowed_tables=settings.ANALYTICS_ALLOWED_TABLES, dialect=analytics.dialect_of(url))
        key = analytics.cache_key_for(checked.sql, url)
        cached = layered_get(key)
        agent_cache_lookup(agent=DATA_ANALYSIS, hit=cached is not None)
        if cached is not None:
            return {**cached, "cached": True}
        with analytics_slot(key_id=key_id, wait_s=wait_s):
            result = analytics.run_checked_query(checked.sql, url=url)
        data = {
            "sql": result.sql,
            "columns": result.columns,
            "rows": result.rows,
            "row_count": len(result.rows),
            "truncated": result.truncated,
            "notes": result.notes,
            "summary": summarise(result.columns, result.rows, result.truncated),
            "chart": chart_spec(result.columns, result.rows),
            "cache_key": result.cache_key,
            "elapsed_ms": round(result.elapsed_ms, 2),
            "source": result.source,
        }
        # A replica's answer may lag the primary: it is not kept under the primary's key.
        if result.source == "primary":
            layered_set(key, data, CACHE_SECONDS)
        return {**data, "cached": False}

    @staticmethod
    def _messages(task: AgentTask) -> list[ChatCompletionMessageParam]:
        schema = analytics.table_columns()
        tables = "\n".join(f"- {table}({', '.join(columns)})" for table, columns in schema.items())
        dialect = analytics.dialect_of(conf.analytics_database_url())
        prompt = (
            f"Write one read-only {dialect} SELECT that answers the question, using only these tables:\n"
            f"{tables}\n{PROMPT_RULES[dialect]}\nQuestion: {task.query}"
        )
        if task.actions:
            prompt += "\nPlan step: " + "; ".join(task.actions)
        if task.feedback:
            prompt += f"\nA previous attempt failed: {task.feedback}\nFix that."
        return [
            {"role": "system", "content": "You translate questions into SQL for an analytics database."},
            {"role": "user", "content": prompt},
        ]


def summarise(columns: list[str], rows: list[list], truncated: bool) -> str:
    if not rows:
        return "The query returned no rows."
    if len(rows) == 1 and len(columns) <= 4:
        return "Result: " + ", ".join(f"{c} = {v}" for c, v in zip(columns, rows[0], strict=False)) + "."
    more = " (capped)" if truncated else ""
    first = ", ".join(f"{c} = {v}" for c, v in zip(columns, rows[0], strict=False))
    return f"{len(rows)} rows{more} with columns {', '.join(columns)}; first: {first}.{_extremes(columns, rows)}"


def _number(value: object) -> float | None:
    # bool is an int to Python, not a quantity to a reader.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _extremes(columns: list[str], rows: list[list]) -> str:
    """" Highest <measure>: <label> (<value>); lowest: ..." when the first column labels the rows
    and another column is numeric in every row: the sentence a reader looks for first."""
    if len(columns) < 2 or len(rows) < 2 or any(not isinstance(r[0], str) for r in rows):
        return ""
    measure = next((i for i in range(1, len(columns)) if all(_number(r[i]) is not None for r in rows)), None)
    if measure is None:
        return ""
    top = max(rows, key=lambda r: float(r[measure]))
    bottom = min(rows, key=lambda r: float(r[measure]))
    return (f" Highest {columns[measure]}: {top[0]} ({top[measure]}); "
            f"lowest: {bottom[0]} ({bottom[measure]}).")


def chart_spec(columns: list[str], rows: list[list]) -> dict:
    """A bar or line chart when there is one label column and numeric columns, else a table."""
    if len(columns) >= 2 and rows:
        numeric = [i for i in range(1, len(columns)) if all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)]
        if numeric:
            label = columns[0]
            kind = "line" if any(w in label.lower() for w in ("date", "month", "week", "day", "year")) else "bar"
            return {"type": kind, "x": label, "y": [columns[i] for i in numeric]}
    return {"type": "table", "columns": columns}


class InformationRetrievalAgent(Agent):
    """Hybrid search over knowledge documents and cases; needs no LLM."""

    name = INFORMATION_RETRIEVAL

    def run(self, task: AgentTask) -> AgentOutput:
        # A retry (after low confidence) widens the net: vector matches down to half the
        # calibrated threshold count too.
        threshold = embeddings.vector_threshold() * (1.0 if task.iteration == 1 else 0.5)
        text = task.query if task.iteration == 1 else " ".join([task.query, *task.actions])
        passages = retrieval.search_passages(text, vector_threshold=threshold)[: retrieval.CONTEXT_SIZE]
        if not passages:
            return AgentOutput(ok=False, error="No passage matched the query.", error_type="RetrievalEmpty",
                               data={"context": "", "sources": [], "confidence": 0.0})
        # How well the best passage matches: one passage that answers is an answer, and the
        # weaker ones that come with it (a mean of the top three failed such sessions) are not a doubt.
        confidence = round(max(p.match for p in passages), 4)
        context = "\n\n".join(f"[{i}] {p.title}\n{p.text}" for i, p in enumerate(passages, start=1))
        # Passages kept apart too, so the answer can quote and cite sentences of each.
        return AgentOutput(ok=True, data={"context": context, "sources": [p.source for p in passages],
                                          "passages": [{"title": p.title, "text": p.text} for p in passages],
                                          "confidence": confidence})


class VisionAgent(Agent):
    """Answers the question from the session's images with the vision model (agents.tools.vision)."""

    name = vision.VISION

    def availability(self, task: AgentTask) -> str | None:
        if not task.images:
            return "no images were given"
        return None if vision.vision_available() else vision.NO_LLM_MESSAGE

    def steps(self, task: AgentTask) -> Steps[AgentOutput]:
        if not task.images:
            return AgentOutput(ok=False, error="The session's images are no longer available.", error_type="ImagesGone")
        try:
            answer = yield from vision.vision_steps(question=task.query, images=task.images, listener=task.listener)
        except LLMError as error:
            return AgentOutput(ok=False, error=str(error), error_type=type(error).__name__)
        return AgentOutput(ok=True, data={"answer": answer.answer, "images": answer.images},
                           tokens_in=answer.tokens_in, tokens_out=answer.tokens_out, cost_usd=answer.cost_usd,
                           model=answer.model)


REGISTRY: dict[str, Agent] = {DATA_ANALYSIS: DataAnalysisAgent(), INFORMATION_RETRIEVAL: InformationRetrievalAgent(),
                              vision.VISION: VisionAgent()}
# When an agent cannot run, who takes the step instead.
SUBSTITUTES: dict[str, str] = {DATA_ANALYSIS: INFORMATION_RETRIEVAL}


def normalise_agent_name(name: Any) -> str:
    """`DataAnalysisAgent`, `data-analysis` and `data_analysis` all name the same worker."""
    text = str(name or "").strip()
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in text).lstrip("_")
    snake = snake.replace("-", "_").replace(" ", "_").replace("__", "_")
    return snake.removesuffix("_agent")


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
