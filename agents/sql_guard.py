"""Defence in depth for SQL from an LLM or a caller: parse, check, then regenerate.

Only one plain `SELECT` (CTEs allowed) over allow-listed tables passes; anything that writes,
touches files, sleeps, or reaches system catalogs is refused with a message saying why. The SQL
that runs is sqlglot's regeneration of the checked tree, so comments and tricks in the original
text never reach the database. Execution adds the second layer (read-only connection, timeout).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

MAX_SQL_LENGTH = 10_000

# Statement and clause nodes that change data, schema or session state.
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable",
        "Command", "Into", "Copy", "Set", "Pragma", "Use", "Transaction", "Commit", "Rollback",
        "Grant", "LoadData", "Attach", "Detach", "Lock",
    )
    if hasattr(exp, name)
)
# Functions that sleep, read or write files, run programs or reach other servers.
_FORBIDDEN_FUNCTION = re.compile(
    r"sleep|benchmark|file|read|write|load|^lo_|dblink|copy|exec|system|shell|import|export"
    r"|^pg_|^sqlite_|advisory|set_config|nextval|setval|current_setting|query_to_xml|randomblob|zeroblob",
    re.IGNORECASE,
)
# Plain functions sqlglot does not model as typed nodes but that are harmless.
_ALLOWED_ANONYMOUS = frozenset(
    {"strftime", "julianday", "date_trunc", "printf", "ifnull", "nullif", "total", "group_concat",
     "string_agg", "to_char", "date_part", "extract", "iif", "instr", "char_length"}
)


class SqlRefused(Exception):
    """The SQL was refused before reaching the database; `str()` says why."""


@dataclass(frozen=True)
class CheckedSql:
    sql: str
    tables: tuple[str, ...]


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name)
    return node.sql_name()


def check_sql(sql: str, *, allowed_tables: list[str] | tuple[str, ...], dialect: str) -> CheckedSql:
    if not isinstance(sql, str) or not sql.strip():
        raise SqlRefused("The SQL is empty.")
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlRefused(f"The SQL is longer than {MAX_SQL_LENGTH} characters.")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as error:
        raise SqlRefused(f"The SQL could not be parsed: {str(error).splitlines()[0]}") from None
    if len(statements) != 1:
        raise SqlRefused(f"Exactly one statement is allowed; found {len(statements)}.")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        raise SqlRefused(f"Only SELECT is allowed; this is {tree.key.upper()}.")

    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise SqlRefused(f"{node.key.upper()} is not allowed inside a query.")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if _FORBIDDEN_FUNCTION.search(name):
                raise SqlRefused(f"The function {name}() is not allowed.")
            if isinstance(node, exp.Anonymous) and name.lower() not in _ALLOWED_ANONYMOUS:
                raise SqlRefused(f"The function {name}() is not on the list of allowed functions.")

    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    allowed = {table.lower() for table in allowed_tables}
    tables: list[str] = []
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if table.args.get("db") or table.args.get("catalog"):
            raise SqlRefused(f"Schema-qualified table {table.sql(dialect=dialect)} is not allowed.")
        if not name:
            raise SqlRefused("Table functions are not allowed.")
        if name in cte_names:
            continue
        if name not in allowed:
            raise SqlRefused(f"Table {name} is not allowed; allowed tables: {', '.join(sorted(allowed))}.")
        tables.append(name)
    if not tables:
        raise SqlRefused("The query must read from at least one allowed table.")
    return CheckedSql(sql=tree.sql(dialect=dialect, comments=False), tables=tuple(sorted(set(tables))))
