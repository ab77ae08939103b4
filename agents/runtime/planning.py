"""Planner and agent selector.

The planner prefers experience: the best matching active case's plan when it is close enough;
else an LLM plan shown similar cases as positive and negative examples, within a total budget
(`AGENTS_PLANNER_LLM_TIMEOUT_S`, 10 s, retries included, never past the session deadline); else
a keyword heuristic. The selector maps plan steps to workers that can actually run them.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from functools import partial

from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from agents.runtime import llm
from agents.runtime.llm import BudgetListener, LLMError, LLMResult, llm_client
from agents.tools.workers import (
    DATA_ANALYSIS,
    INFORMATION_RETRIEVAL,
    REGISTRY,
    SUBSTITUTES,
    AgentTask,
    normalise_agent_name,
)
from casebank.models import Case, CaseStatus, ReviewState
from casebank.search.selectors import SearchHit
from reflection.experiments.selectors import resolve_plan
from reflection.llm.steps import Blocking, Steps, run_sync

logger = logging.getLogger(__name__)
SUPERVISOR = "supervisor"
_DATA_WORDS = re.compile(
    r"\b(how many|how much|count|number of|total|sum|average|avg|mean|median|revenue|sales|orders?|"
    r"top \d+|top|rate|trend|per|by (region|month|week|segment|category)|compare|distribution|growth|"
    r"forecast|percent|ratio|customers?|tickets?|products?|spend|cost)\b",
    re.IGNORECASE,
)
_KNOWLEDGE_WORDS = re.compile(
    r"\b(policy|policies|how (do|should|can) (i|we)|what is our|procedure|runbook|guide|why|explain|"
    r"summar(y|ise|ize)|document|docs|rules?|sla|gdpr|postmortem|onboarding|escalat\w*|refund)\b",
    re.IGNORECASE,
)
PLAN_SCHEMA = {
    "type": "object",
    "required": ["steps"],
    "properties": {
        "steps": {
            "type": "array", "minItems": 1, "maxItems": 10,
            "items": {
                "type": "object", "required": ["agent", "action"],
                "properties": {"agent": {"type": "string"}, "action": {"type": "string"}},
            },
        },
        "rationale": {"type": "string"},
    },
}


@dataclass
class Plan:
    steps: list[dict]
    source: str  # case | llm | heuristic
    case: Case | None = None
    case_version: int | None = None  # the version run: a candidate under experiment for some keys
    similarity: float | None = None
    llm: LLMResult | None = None
    notes: list[str] = field(default_factory=list)


def analyse(query: str, *, sql: str = "") -> dict:
    return {
        # SQL from the caller is a data step whatever the words of the query.
        "wants_data": bool(sql) or bool(_DATA_WORDS.search(query)),
        "wants_knowledge": bool(_KNOWLEDGE_WORDS.search(query)),
        "length": len(query),
    }


def reusable(hit: SearchHit) -> bool:
    # Retrieval returns approved cases only; the check stays so a plan is never reused unreviewed.
    case = hit.case
    return case.status == CaseStatus.ACTIVE and case.review_state == ReviewState.APPROVED and isinstance(case.plan, list)


def make_plan(*, query: str, hits: list[SearchHit], analysis: dict, deadline: float | None = None,
              listener: BudgetListener | None = None, key: str = "") -> Plan:
    """`plan_steps` run in this thread."""
    return run_sync(plan_steps(query=query, hits=hits, analysis=analysis, deadline=deadline, listener=listener, key=key))


def plan_steps(*, query: str, hits: list[SearchHit], analysis: dict, deadline: float | None = None,
               listener: BudgetListener | None = None, key: str = "") -> Steps[Plan]:
    """The plan for `query`; `deadline` (a `time.monotonic()` value) is the session's. A reused
    case's plan is the version `key` (the session id) runs: while an experiment runs on the
    case, its candidate for a share of keys (`reflection.experiments.selectors.resolve_plan`)."""
    best = next((hit for hit in hits if reusable(hit)), None)
    threshold = settings.AGENTS_CASE_SIMILARITY
    if best is not None and best.similarity is not None and best.similarity >= threshold:
        case_plan: Plan = yield Blocking(partial(_case_plan, best, key))
        return case_plan
    notes = []
    if best is not None:
        notes.append(f"closest case {best.case.id} at similarity {best.similarity or 0:.2f} < {threshold}")
    client = llm_client()
    budget = float(settings.AGENTS_PLANNER_LLM_TIMEOUT_S)
    if client is not None:
        try:
            # One time budget for the whole call: attempts, re-asks and backoff pauses included
            # (a wait for the request budget comes before it, bounded by the session deadline).
            answer = yield from llm.json_steps(
                name="plan", messages=_plan_messages(query, hits), schema=PLAN_SCHEMA, total_timeout=budget,
                deadline=deadline, listener=listener,
            )
            return Plan(steps=answer.data["steps"], source="llm", llm=answer, notes=notes)
        except LLMError as error:
            notes.append(f"LLM plan failed: {error}")
        except Exception as error:  # planning must go on: the heuristic plan is always there
            logger.exception("LLM planner crashed")
            notes.append(f"LLM plan failed: {type(error).__name__}")
    return Plan(steps=heuristic_plan(query, analysis), source="heuristic", notes=notes)


def _case_plan(best: SearchHit, key: str) -> Plan:
    """The reused case's plan, in the version `key` runs (a query: the case's experiment)."""
    served = resolve_plan(case=best.case, key=key)
    if not isinstance(served.plan, list):  # a text plan cannot be run step by step: the current one
        return Plan(steps=list(best.case.plan), source="case", case=best.case, similarity=best.similarity)
    notes = [f"experiment #{served.experiment_id}: {served.arm} arm, v{served.version}"] if served.arm else []
    return Plan(steps=list(served.plan), source="case", case=best.case, case_version=served.version,
                similarity=best.similarity, notes=notes)


def heuristic_plan(query: str, analysis: dict) -> list[dict]:
    steps = []
    if analysis["wants_knowledge"] or not analysis["wants_data"]:
        steps.append({"agent": INFORMATION_RETRIEVAL, "action": f"Find documents and cases about: {query}"})
    if analysis["wants_data"]:
        steps.append({"agent": DATA_ANALYSIS, "action": f"Query the analytics database: {query}"})
    steps.append({"agent": SUPERVISOR, "action": "Summarise the findings for the user"})
    return steps


def _example(hit: SearchHit) -> dict:
    case = hit.case
    return {"query": case.query, "plan": case.plan, "success_rate": case.success_rate, "runs": case.run_count}


def _plan_messages(query: str, hits: list[SearchHit]) -> list[ChatCompletionMessageParam]:
    # Retrieval marks each hit: successes are examples to follow, warnings are failures to avoid.
    positive = [_example(h) for h in hits if h.role == "example" and h.case.status == CaseStatus.ACTIVE]
    negative = [_example(h) for h in hits if h.role == "warning"]
    agents = ", ".join([*REGISTRY, SUPERVISOR])
    content = (
        f"Plan the steps that answer this request. Agents: {agents}.\n"
        f"- {DATA_ANALYSIS}: SQL over the analytics database.\n- {INFORMATION_RETRIEVAL}: knowledge documents and past cases.\n"
        f"- {SUPERVISOR}: the final summary.\nRequest: {query}\n"
        f"Plans that worked for similar requests (follow them):\n{json.dumps(positive[:3], default=str)}\n"
        f"Plans that often failed (avoid their mistakes):\n{json.dumps(negative[:3], default=str)}"
    )
    return [{"role": "system", "content": "You are the planner of a team of agents."}, {"role": "user", "content": content}]


@dataclass
class Assignment:
    agent: str
    actions: list[str]
    decision: str  # selected | substituted
    requested: str
    sql: str = ""  # SQL the step carries (a case filed from a session keeps the SQL that worked)


def select_agents(*, steps: list[dict], task: AgentTask) -> tuple[list[Assignment], list[dict]]:
    """Workers for the plan's steps (each worker once); returns (assignments, decisions)."""
    assignments: dict[str, Assignment] = {}
    decisions: list[dict] = []
    for step in steps:
        listed = step.get("agents")
        names = listed if isinstance(listed, list) else [step.get("agent")]
        for raw in names:
            name = normalise_agent_name(raw)
            action = str(step.get("action") or step.get("description") or "")
            if name == SUPERVISOR:
                continue
            chosen, decision, reason = name, "selected", ""
            agent = REGISTRY.get(name)
            step_sql = str(step.get("sql") or "") if name == DATA_ANALYSIS else ""
            problem = "unknown agent" if agent is None else agent.availability(replace(task, sql=step_sql or task.sql))
            if problem:
                substitute = SUBSTITUTES.get(name)
                substitute_agent = REGISTRY.get(substitute) if substitute is not None else None
                if substitute is not None and substitute_agent is not None and substitute_agent.availability(task) is None:
                    chosen, decision, reason = substitute, "substituted", problem
                else:
                    decisions.append({"agent": raw, "decision": "skipped", "reason": problem})
                    continue
            decisions.append({"agent": raw, "decision": decision, "chosen": chosen, "reason": reason})
            if chosen in assignments:
                assignments[chosen].actions.append(action)
                assignments[chosen].sql = assignments[chosen].sql or (step_sql if chosen == name else "")
            else:
                assignments[chosen] = Assignment(agent=chosen, actions=[action], decision=decision, requested=name,
                                                 sql=step_sql if chosen == name else "")
    return list(assignments.values()), decisions
