"""The case form's plan editor: steps as rows (agent, action, optional params), or the raw JSON.

Works without JavaScript: rows carry an order number and a remove box, and spare blank rows
take new steps; a small inline script adds buttons (add, remove, move) and keeps the JSON view
in step with the rows. Whatever comes in is turned into a plan here and then checked by
`services.validate_case_content`, the validator the API uses.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

MODE_ROWS, MODE_JSON = "rows", "json"
SPARE_ROWS = 2
# Names of the agents a plan step may name. The case bank does not know the agents app (the
# dependency rule): the agents app registers its workers here when it starts (AgentsConfig).
_KNOWN_AGENTS: list[str] = []


def plan_agents_register(*names: str) -> None:
    for name in names:
        if name not in _KNOWN_AGENTS:
            _KNOWN_AGENTS.append(name)


def known_agents() -> list[str]:
    return list(_KNOWN_AGENTS)


@dataclass
class StepRow:
    agent: str = ""
    action: str = ""
    params: str = ""  # a JSON object of the step's other keys, or ""


def rows_of(plan: Any) -> list[StepRow] | None:
    """The plan as rows, or None when rows cannot hold it (text, or a step that is not an object)."""
    if not isinstance(plan, list) or not all(isinstance(step, dict) for step in plan):
        return None
    rows = []
    for step in plan:
        agent, action = step.get("agent"), step.get("action")
        rest = {k: v for k, v in step.items() if not (k == "agent" and isinstance(agent, str))
                and not (k == "action" and isinstance(action, str))}
        rows.append(StepRow(agent=agent if isinstance(agent, str) else "", action=action if isinstance(action, str) else "",
                            params=json.dumps(rest, ensure_ascii=False) if rest else ""))
    return rows


def plan_of_rows(agents: list[str], actions: list[str], params: list[str], orders: list[str],
                 removed: set[str]) -> list[dict]:
    """Steps from the posted rows: blank and removed rows dropped, sorted by their order number."""
    numbered = []
    for index, (agent, action, extra) in enumerate(zip(agents, actions, params, strict=False)):
        if str(index) in removed or not (agent.strip() or action.strip() or extra.strip()):
            continue
        try:
            order = float(orders[index]) if index < len(orders) and orders[index].strip() else float(index)
        except ValueError:
            raise ValidationError(f"Row {index + 1}: the order must be a number.") from None
        step: dict[str, Any] = {}
        if extra.strip():
            try:
                parsed = json.loads(extra)
            except ValueError:
                raise ValidationError(f"Row {index + 1}: params must be a JSON object, e.g. {{\"sql\": \"...\"}}.") from None
            if not isinstance(parsed, dict):
                raise ValidationError(f"Row {index + 1}: params must be a JSON object, e.g. {{\"sql\": \"...\"}}.")
            step.update(parsed)
        if agent.strip():
            step["agent"] = agent.strip()
        if action.strip():
            step["action"] = action.strip()
        numbered.append((order, index, step))
    return [step for _, _, step in sorted(numbered, key=lambda item: (item[0], item[1]))]


class PlanEditorWidget(forms.Widget):
    """Rows and a JSON textarea in one widget; the posted `mode` says which one is the plan."""

    template_name = "admin/casebank/case/plan_editor.html"

    def format_value(self, value: Any) -> Any:
        return value

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> SafeString:
        posted = value if isinstance(value, dict) and "mode" in value else None
        if posted is not None:  # the form came back with errors: show what was sent
            mode, raw, rows = posted["mode"], posted["raw"], posted["rows"]
        else:
            plan = _as_plan(value)
            rows = rows_of(plan)
            mode = MODE_ROWS if rows is not None else MODE_JSON
            raw = json.dumps(plan, indent=2, ensure_ascii=False) if plan is not None else ""
        rows = list(rows or [])
        agents = known_agents()
        context = {
            "name": name,
            "mode": mode,
            "raw": raw,
            "rows": [*rows, *[StepRow() for _ in range(SPARE_ROWS)]],
            "agents": agents,
            "id": (attrs or {}).get("id", f"id_{name}"),
        }
        return SafeString(render_to_string(self.template_name, context))

    def value_from_datadict(self, data: Any, files: Any, name: str) -> dict:
        mode = data.get(f"{name}_mode", MODE_JSON)
        return {
            "mode": mode if mode in (MODE_ROWS, MODE_JSON) else MODE_JSON,
            "raw": data.get(name, ""),
            "agents": data.getlist(f"{name}_agent") if hasattr(data, "getlist") else [],
            "actions": data.getlist(f"{name}_action") if hasattr(data, "getlist") else [],
            "params": data.getlist(f"{name}_params") if hasattr(data, "getlist") else [],
            "orders": data.getlist(f"{name}_order") if hasattr(data, "getlist") else [],
            "removed": set(data.getlist(f"{name}_remove")) if hasattr(data, "getlist") else set(),
        }

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and f"{name}_mode" not in data


def _as_plan(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class PlanField(forms.Field):
    """The plan from the editor: the rows, or the JSON text (text plans are JSON strings)."""

    widget = PlanEditorWidget

    def to_python(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return _as_plan(value)
        if value["mode"] == MODE_ROWS:
            plan: Any = plan_of_rows(value["agents"], value["actions"], value["params"], value["orders"], value["removed"])
            if not plan:
                raise ValidationError("Add at least one step.")
            return plan
        raw = str(value["raw"]).strip()
        if not raw:
            raise ValidationError("The plan is required.")
        try:
            return json.loads(raw)
        except ValueError as error:
            raise ValidationError(f"Not valid JSON: {error}.") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Re-shown after an error: what was posted, rows and all.
        if isinstance(data, dict) and data.get("mode") == MODE_ROWS:
            rows = [StepRow(a, b, c) for i, (a, b, c) in enumerate(zip(data["agents"], data["actions"], data["params"],
                                                                        strict=False))
                    if str(i) not in data["removed"] and (a.strip() or b.strip() or c.strip())]
            return {"mode": MODE_ROWS, "raw": data["raw"], "rows": rows}
        if isinstance(data, dict):
            return {"mode": MODE_JSON, "raw": data["raw"], "rows": rows_of(_as_plan(data["raw"]))}
        return data

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != initial
        except ValidationError:
            return True
