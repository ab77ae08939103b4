"""Defence in depth for SQL from an LLM or a caller: parse, check against allow-lists, regenerate.

Only one plain `SELECT` (CTEs and set operations allowed) passes. Every node of the parsed tree
must be a known-safe construct, every function must be on the function allow-list, and every
table must be allow-listed or a CTE that is in scope where it is used. Anything else is refused
with a message saying why, before any connection is opened. The SQL that runs is sqlglot's
regeneration of the checked tree, so comments and tricks in the original text never reach the
database. Execution adds the second layer (`agents.tools.analytics`: read-only, timeout, row cap).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError, TokenError
from sqlglot.tokens import TokenType

from agents.tools.sql_columns import check_columns

MAX_SQL_LENGTH = 10_000
# sqlglot's parser recurses ~20 frames per parenthesis; 50 levels already exhaust Python's stack.
MAX_NESTING = 20
# `a || a` doubles a string; chained through CTEs that is exponential, so the operators are counted.
MAX_CONCATENATIONS = 8
# `CAST('a' AS CHAR(1000000))` pads one letter to a megabyte per row (issue #16: 501 MB from a
# 54-byte query); a type's length above this is refused.
MAX_TYPE_LENGTH = 1000
# strftime('%J%J…') or to_char('DAY DAY …') turns each two-character specifier into up to 17
# characters: the literal format is kept short, as real ones are.
MAX_FORMAT_LENGTH = 64
# Functions whose output can be far larger than their input, named in their own refusal (they are
# not on the allow-list either way): padding, repetition, formatting with widths, blobs of a
# given size and replacement of one character by many.
_AMPLIFIERS = frozenset({"repeat", "replicate", "space", "lpad", "rpad", "pad", "printf", "format",
                         "zeroblob", "randomblob", "replace", "translate", "overlay"})
DIALECTS = ("sqlite", "postgres")

_T = exp.DataType.Type
# Plain SELECT syntax. Anything else (INTO, FOR UPDATE, LATERAL, arrays, bind parameters, table
# samples, ...) is refused because it is not here, not because someone remembered to forbid it.
_ALLOWED_SYNTAX: frozenset[type[exp.Expression]] = frozenset({
    exp.Select, exp.Union, exp.Except, exp.Intersect, exp.With, exp.CTE, exp.Subquery, exp.From,
    exp.Join, exp.Table, exp.TableAlias, exp.Alias, exp.Where, exp.Group, exp.Having, exp.Order,
    exp.Ordered, exp.Limit, exp.Offset, exp.Distinct, exp.Window, exp.WindowSpec, exp.Filter,
    exp.WithinGroup, exp.Star, exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null,
    exp.Paren, exp.Tuple, exp.Var, exp.DataType, exp.DataTypeParam, exp.Interval,
    exp.And, exp.Or, exp.Not, exp.Neg, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.NullSafeEQ, exp.NullSafeNEQ, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike, exp.Exists,
    exp.Any, exp.All, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Pow, exp.DPipe,
})
# Scalar, aggregate and window functions that neither reveal the server nor amplify their input.
# Left out on purpose: printf/format/repeat/lpad/rpad/replace (amplify), string_agg/group_concat/
# array_agg (grow with the row count), version()/current_user/current_database()/sqlite_version()
# (leak the server), and everything that sleeps, touches files or large objects, or sets state.
_ALLOWED_FUNCTIONS: frozenset[type[exp.Func]] = frozenset({
    # aggregates
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Stddev, exp.StddevPop, exp.StddevSamp,
    exp.Variance, exp.VariancePop, exp.PercentileCont, exp.PercentileDisc, exp.LogicalAnd,
    exp.LogicalOr,
    # windows
    exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile, exp.Lag,
    exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
    # conditionals and casts
    exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Cast,
    # numbers
    exp.Abs, exp.Round, exp.Ceil, exp.Floor, exp.Sqrt, exp.Sign, exp.Ln, exp.Log, exp.Exp,
    # strings (none of these returns more than it is given, except concatenation, which is counted)
    exp.Lower, exp.Upper, exp.Length, exp.Substring, exp.Trim, exp.Left, exp.Right,
    exp.StrPosition, exp.Concat, exp.ConcatWs,
    # dates and times
    exp.CurrentDate, exp.CurrentTime, exp.CurrentTimestamp, exp.Localtime, exp.Localtimestamp,
    exp.Extract, exp.TimestampTrunc, exp.DateTrunc, exp.TimeToStr, exp.Date, exp.TsOrDsToTimestamp,
})
# Functions sqlglot keeps as plain names (exp.Anonymous), per dialect.
_ALLOWED_ANONYMOUS: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"total", "date", "time", "datetime", "julianday", "unixepoch", "strftime"}),
    "postgres": frozenset({"age"}),
}
# The format decides the output length (to_char's `DAY` becomes `WEDNESDAY`), so it must be a
# literal: a computed format could be fed back into itself through CTEs.
_FORMAT_FUNCTIONS = {"strftime"}
_ALLOWED_TYPES = frozenset({
    _T.INT, _T.BIGINT, _T.SMALLINT, _T.TINYINT, _T.DECIMAL, _T.DOUBLE, _T.FLOAT, _T.TEXT,
    _T.VARCHAR, _T.CHAR, _T.BOOLEAN, _T.DATE, _T.TIME, _T.TIMESTAMP, _T.TIMESTAMPTZ, _T.INTERVAL,
})
# Bare words PostgreSQL evaluates as the session's user or schema although sqlglot reads them as
# columns (`SELECT user FROM orders` names the login role). Quote them to mean a column.
_SESSION_WORDS = frozenset({"user", "current_role", "system_user", "session_user", "current_user",
                            "current_schema", "current_catalog"})
# Date-part units such as `MONTH` in `date_trunc('month', …)` or `EXTRACT(YEAR FROM …)`.
_VAR_PARENTS = (exp.Extract, exp.TimestampTrunc, exp.DateTrunc, exp.Interval)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What the Text2SQL prompt tells the LLM, so that its first answer passes (kept beside the lists).
PROMPT_RULES: dict[str, str] = {
    dialect: (
        "Rules: one plain SELECT (CTEs allowed, not recursive); values written into the SQL, no bind "
        "parameters; functions only from: count, sum, avg, min, max, round, abs, ceil, floor, coalesce, "
        "nullif, case, cast to basic types, lower, upper, length, substr, trim, window functions "
        f"(row_number, rank, dense_rank, lag, lead, ntile), {dates}; no printf, format, repeat, lpad, "
        "replace, string_agg or group_concat; only the listed columns (no system columns, no table.function "
        f"notation); type lengths up to {MAX_TYPE_LENGTH}."
    )
    for dialect, dates in (
        ("sqlite", f"date, datetime, julianday and strftime with a literal format of at most {MAX_FORMAT_LENGTH} characters"),
        ("postgres", f"date_trunc, extract, date_part, to_char with a literal format of at most {MAX_FORMAT_LENGTH} "
                     "characters, age, percentile_cont"),
    )
}
_BIND_MESSAGE = (
    "Bind parameters (?, $1, :name, @name, %s) are not supported; write the values into the SQL."
)


class SqlRefused(Exception):
    """The SQL was refused before reaching the database; `str()` says why."""


@dataclass(frozen=True)
class CheckedSql:
    sql: str
    tables: tuple[str, ...]
    tree: exp.Expression = field(compare=False, repr=False)


def check_sql(sql: str, *, allowed_tables: list[str] | tuple[str, ...], dialect: str) -> CheckedSql:
    """The checked, regenerated SQL and the tables it reads; raises `SqlRefused` otherwise."""
    if dialect not in DIALECTS:
        raise SqlRefused(f"The dialect {dialect!r} is not supported; use one of {', '.join(DIALECTS)}.")
    if not isinstance(sql, str) or not sql.strip():
        raise SqlRefused("The SQL is empty.")
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlRefused(f"The SQL is longer than {MAX_SQL_LENGTH} characters.")
    try:
        return _check(sql, allowed={table.lower() for table in allowed_tables}, dialect=dialect)
    except RecursionError:
        # A chain of NOT or CASE nests without parentheses; refusing beats a 500.
        raise SqlRefused("The SQL is nested too deeply to check.") from None


def check_sql_columns(checked: CheckedSql, *, columns: Mapping[str, Sequence[str]], dialect: str) -> None:
    """The second half of the check, once the real columns of the allowed tables are known
    (`analytics.table_columns`): every column reference must resolve to one (`sql_columns`)."""
    try:
        check_columns(checked.tree, columns=columns, dialect=dialect, refuse=SqlRefused)
    except RecursionError:
        raise SqlRefused("The SQL is nested too deeply to check.") from None


def _check(sql: str, *, allowed: set[str], dialect: str) -> CheckedSql:
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
        _check_nesting(tokens)
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except TokenError as error:
        raise SqlRefused(
            f"The SQL could not be parsed (an unterminated string, quoted name or comment?): {_first_line(error)}"
        ) from None
    except SqlglotError as error:
        raise SqlRefused(f"The SQL could not be parsed: {_first_line(error)}") from None
    if len(statements) != 1:
        raise SqlRefused(f"Exactly one statement is allowed; found {len(statements)}.")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        raise SqlRefused(f"Only SELECT is allowed; this is {tree.key.upper()}.")

    tables: list[str] = []
    concatenations = 0
    for node in tree.walk():
        if isinstance(node, (exp.Placeholder, exp.Parameter, exp.SessionParameter)):
            raise SqlRefused(_BIND_MESSAGE)
        if type(node) in _ALLOWED_SYNTAX:
            _check_syntax(node, dialect=dialect, allowed=allowed, tables=tables)
        elif isinstance(node, exp.Func):
            _check_function(node, dialect=dialect)
        else:
            raise SqlRefused(f"{node.key.upper()} is not allowed in an analytics query.")
        if isinstance(node, exp.DPipe):
            concatenations += 1
        elif isinstance(node, (exp.Concat, exp.ConcatWs)):
            concatenations += max(len(node.expressions) - 1, 0)
    if concatenations > MAX_CONCATENATIONS:
        raise SqlRefused(f"At most {MAX_CONCATENATIONS} string concatenations are allowed; found {concatenations}.")
    if not tables:
        raise SqlRefused("The query must read from at least one allowed table.")
    return CheckedSql(sql=tree.sql(dialect=dialect, comments=False), tables=tuple(sorted(set(tables))), tree=tree)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _check_nesting(tokens: list) -> None:
    depth = 0
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise SqlRefused(f"The SQL nests parentheses more than {MAX_NESTING} levels deep.")
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1


def _check_syntax(node: exp.Expression, *, dialect: str, allowed: set[str], tables: list[str]) -> None:
    if isinstance(node, exp.Identifier) and not node.quoted and not _PLAIN_NAME.fullmatch(node.name):
        if node.name[:1] in "$:@?":
            raise SqlRefused(_BIND_MESSAGE)
        raise SqlRefused(f"The name {node.name!r} is not a plain identifier; quote it.")
    elif isinstance(node, exp.Column) and not node.table and node.name.lower() in _SESSION_WORDS:
        if not node.this.quoted:
            raise SqlRefused(f"{node.name} names the database session, not a column; quote it if it is a column.")
    elif isinstance(node, exp.Var) and not isinstance(node.parent, _VAR_PARENTS):
        raise SqlRefused(f"The keyword {node.name} is not allowed here.")
    elif isinstance(node, exp.DataType) and node.this not in _ALLOWED_TYPES:
        raise SqlRefused(f"Casting to {node.sql(dialect=dialect)} is not allowed.")
    elif isinstance(node, exp.DataTypeParam) and not _small_number(node.this):
        raise SqlRefused(
            f"Casting to {node.parent.sql(dialect=dialect) if node.parent else 'a type'} is not allowed: "
            f"a length or precision must be a number up to {MAX_TYPE_LENGTH} (CHAR(n) pads every value to n)."
        )
    elif isinstance(node, exp.With):
        _check_with(node, dialect=dialect, allowed=allowed)
    elif isinstance(node, exp.Table):
        name = _check_table(node, dialect=dialect, allowed=allowed)
        if name is not None:
            tables.append(name)


def _small_number(node: object) -> bool:
    if not isinstance(node, exp.Literal) or node.is_string or not node.name.isdigit():
        return False
    return int(node.name) <= MAX_TYPE_LENGTH


def _check_function(node: exp.Func, *, dialect: str) -> None:
    written = str(node.name) if isinstance(node, exp.Anonymous) else _display_name(node, dialect)
    if written.lower() in _AMPLIFIERS or node.key in _AMPLIFIERS:
        raise SqlRefused(
            f"The function {written} is not on the list of allowed functions: its output can be far "
            "larger than its input "
            "(padding, repetition, widths and sized blobs are refused; results are bounded in bytes)."
        )
    if isinstance(node, exp.Anonymous):
        name = str(node.name).lower()
        if name not in _ALLOWED_ANONYMOUS[dialect]:
            raise SqlRefused(f"The function {node.name} is not on the list of allowed functions.")
        if name in _FORMAT_FUNCTIONS:
            _check_format(node.expressions[0] if node.expressions else None, str(node.name))
        return
    if type(node) not in _ALLOWED_FUNCTIONS:
        raise SqlRefused(f"The function {_display_name(node, dialect)} is not on the list of allowed functions.")
    if isinstance(node, exp.TimeToStr):
        _check_format(node.args.get("format"), _display_name(node, dialect))


def _check_format(node: exp.Expression | None, function: str) -> None:
    if not _is_string_literal(node):
        raise SqlRefused(f"The format of {function} must be a string literal.")
    if len(node.name) > MAX_FORMAT_LENGTH:  # type: ignore[union-attr]
        raise SqlRefused(f"The format of {function} is longer than {MAX_FORMAT_LENGTH} characters.")


def _display_name(node: exp.Func, dialect: str) -> str:
    # The name as written in the dialect (`LPAD`, not sqlglot's class name `PAD`).
    match = _PLAIN_NAME.match(node.sql(dialect=dialect))
    return match.group(0) if match else node.key.upper()


def _is_string_literal(node: exp.Expression | None) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _name_key(identifier: exp.Identifier, dialect: str) -> str:
    """How the database compares the name: PostgreSQL folds unquoted names, SQLite folds all."""
    if dialect == "postgres" and identifier.quoted:
        return identifier.name
    return identifier.name.lower()


def _cte_identifier(cte: exp.CTE) -> exp.Identifier:
    alias = cte.args.get("alias")
    identifier = alias.args.get("this") if alias is not None else None
    if not isinstance(identifier, exp.Identifier):
        raise SqlRefused("Every CTE needs a name.")
    return identifier


def _check_with(node: exp.With, *, dialect: str, allowed: set[str]) -> None:
    if node.args.get("recursive"):
        raise SqlRefused("WITH RECURSIVE is not allowed.")
    for cte in node.expressions:
        identifier = _cte_identifier(cte)
        if not _TABLE_NAME.fullmatch(identifier.name):
            raise SqlRefused(f"The CTE name {identifier.name!r} must be a plain ASCII name.")
        if _name_key(identifier, dialect) in allowed:
            raise SqlRefused(f"The CTE name {identifier.name} shadows an allowed table; give it another name.")


def _visible_ctes(table: exp.Table, dialect: str) -> set[str]:
    """The CTE names in scope at `table`, walking out through the queries that enclose it.

    A query's CTEs are visible in its body, not in its own WITH clause; inside the WITH clause a CTE
    sees only the CTEs defined before it. That is what both PostgreSQL and SQLite resolve as a CTE
    (SQLite also looks forward and at itself; those references are then checked as tables, which is
    stricter, never looser). A name defined in some other scope does not count, so a CTE called
    `sqlite_master` in a subquery cannot hide the real table elsewhere.
    """
    visible: set[str] = set()
    child: exp.Expression = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            position = next((i for i, cte in enumerate(node.expressions) if cte is child), 0)
            visible.update(_name_key(_cte_identifier(cte), dialect) for cte in node.expressions[:position])
        else:
            with_ = node.args.get("with_")
            if isinstance(with_, exp.With) and child is not with_:
                visible.update(_name_key(_cte_identifier(cte), dialect) for cte in with_.expressions)
        child, node = node, node.parent
    return visible


def _check_table(table: exp.Table, *, dialect: str, allowed: set[str]) -> str | None:
    """The allow-listed table `table` reads, or None when it reads a CTE in scope."""
    if table.args.get("db") or table.args.get("catalog"):
        raise SqlRefused(f"Schema-qualified table {table.sql(dialect=dialect)} is not allowed.")
    identifier = table.this
    if not isinstance(identifier, exp.Identifier) or not identifier.name:
        raise SqlRefused("Table functions are not allowed.")
    if not _TABLE_NAME.fullmatch(identifier.name):
        raise SqlRefused(f"Table {identifier.name!r} is not allowed; table names are plain ASCII names.")
    key = _name_key(identifier, dialect)
    if key in _visible_ctes(table, dialect):
        return None
    if key not in allowed:
        raise SqlRefused(f"Table {identifier.name} is not allowed; allowed tables: {', '.join(sorted(allowed))}.")
    return key
