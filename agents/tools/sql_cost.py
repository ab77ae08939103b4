"""The cost check: ask the planner before running a checked query, refuse one over the bounds.

The guard (`sql_guard`) knows what a query may say, not how much work it is: `SELECT count(*)
FROM orders a, orders b, orders c` is plain, allowed SQL that keeps a core busy until the
statement timeout. So the plan is read first, in the same read-only transaction:

- PostgreSQL: `EXPLAIN (FORMAT JSON)`, the planner's estimates. Refused when any node expects
  more than `ANALYTICS_MAX_PLAN_ROWS` rows (a cross product's join node, even under `count(*)`)
  or the plan's total cost passes `ANALYTICS_MAX_PLAN_COST`.
- SQLite: `EXPLAIN QUERY PLAN` has no estimates, so rows are estimated from the plan's shape: full
  scans (`SCAN t`) nested in one loop multiply their tables' row counts, an index search (`SEARCH`)
  counts as one row per outer row, a correlated subquery runs once per outer row, others once.
  Refused above `ANALYTICS_MAX_PLAN_ROWS`: a full cross product of large tables.

Both are estimates: a refusal names it so the caller can add a join condition or a filter.
"""
from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from sqlglot import exp

from agents.tools.sql_guard import SqlRefused

_ADVICE = "add a join condition or a filter"


class QueryTooCostly(SqlRefused):
    """The planner's estimate is over the configured bounds; nothing ran."""


def table_aliases(tree: exp.Expression) -> dict[str, str]:
    """Each name a table is read under (its alias, else its name) -> the table, lower case."""
    aliases: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        aliases[(table.alias_or_name or table.name).lower()] = table.name.lower()
    return aliases


def check_postgres_plan(cursor: Any, sql: str) -> dict[str, float]:
    """EXPLAIN the query on `cursor` (in the analytics transaction); raises `QueryTooCostly`."""
    cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
    raw = cursor.fetchone()[0]
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    rows, cost = _max_rows(plan), float(plan.get("Total Cost", 0.0))
    max_rows, max_cost = int(settings.ANALYTICS_MAX_PLAN_ROWS), float(settings.ANALYTICS_MAX_PLAN_COST)
    if rows > max_rows:
        raise QueryTooCostly(
            f"The planner estimates {rows:,.0f} rows at one step of this query, above ANALYTICS_MAX_PLAN_ROWS "
            f"({max_rows:,}); {_ADVICE}."
        )
    if cost > max_cost:
        raise QueryTooCostly(
            f"The planner estimates a cost of {cost:,.0f} for this query, above ANALYTICS_MAX_PLAN_COST "
            f"({max_cost:,.0f}); {_ADVICE}."
        )
    return {"rows": rows, "cost": cost}


def _max_rows(node: Mapping[str, Any]) -> float:
    own = float(node.get("Plan Rows", 0.0))
    return max([own, *(_max_rows(child) for child in node.get("Plans", []))])


def check_sqlite_plan(connection: sqlite3.Connection, sql: str, *, aliases: Mapping[str, str]) -> dict[str, float]:
    """Estimate the rows the plan visits from its shape and the tables' sizes; raises `QueryTooCostly`."""
    plan = connection.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
    children: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for node_id, parent, _unused, detail in plan:
        children[int(parent)].append((int(node_id), str(detail)))
    estimate = _SqlitePlanEstimate(connection, aliases, children)
    rows = estimate.rows_under(0)
    max_rows = int(settings.ANALYTICS_MAX_PLAN_ROWS)
    if rows > max_rows:
        scans = " × ".join(f"{name} ({count:,})" for name, count in estimate.largest_loop)
        raise QueryTooCostly(
            f"The query plan nests full scans of {scans}: about {rows:,.0f} rows, above ANALYTICS_MAX_PLAN_ROWS "
            f"({max_rows:,}); {_ADVICE}."
        )
    return {"rows": float(rows)}


class _SqlitePlanEstimate:
    def __init__(self, connection: sqlite3.Connection, aliases: Mapping[str, str],
                 children: Mapping[int, list[tuple[int, str]]]) -> None:
        self._connection = connection
        self._aliases = aliases
        self._children = children
        self._sizes: dict[str, int] = {}  # a table's or a materialized CTE's rows
        self.largest_loop: list[tuple[str, int]] = []

    def rows_under(self, parent: int) -> int:
        loop, loop_names, correlated, once = 1, [], 0, 0
        for node_id, detail in self._children.get(parent, []):
            words = detail.split()
            if words[:1] == ["SCAN"] and len(words) > 1:
                size = self._size(words[1])
                loop *= max(size, 1)
                table = self._aliases.get(words[1].lower(), words[1])
                loop_names.append((table if table == words[1] else f"{table} AS {words[1]}", size))
            elif words[:1] == ["SEARCH"]:
                continue  # an index lookup: about one row per outer row
            elif words[:1] in (["MATERIALIZE"], ["CO-ROUTINE"]) and len(words) > 1:
                size = self.rows_under(node_id)
                self._sizes[words[1].lower()] = size
                once += size
            elif words[:1] == ["CORRELATED"]:
                correlated += self.rows_under(node_id)
            else:
                once += self.rows_under(node_id)
        if len(loop_names) > len(self.largest_loop) or (
            loop_names and loop > _product(self.largest_loop)
        ):
            self.largest_loop = loop_names
        return loop * (1 + correlated) + once if loop_names else correlated + once

    def _size(self, name: str) -> int:
        key = name.lower()
        if key in self._sizes:
            return self._sizes[key]
        table = self._aliases.get(key, key)
        if table in self._sizes:
            return self._sizes[table]
        try:
            # The allow-listed tables only (the guard let nothing else through); quoted as a name.
            quoted = '"' + table.replace('"', '""') + '"'
            size = int(self._connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
        except sqlite3.Error:
            size = 1  # a subquery's name without a MATERIALIZE step: counted where it is planned
        self._sizes[table] = size
        return size


def _product(loop: list[tuple[str, int]]) -> int:
    result = 1
    for _name, size in loop:
        result *= max(size, 1)
    return result
