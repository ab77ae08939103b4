"""Every column reference resolved against the real columns of the table or CTE it names.

PostgreSQL reads `o.json_agg` as `json_agg(o)` when `orders AS o` has no column `json_agg`
(attribute notation), so any function taking a table row was callable past the function
allow-list (issue #16: `SELECT o.row_to_json FROM orders AS o`, `a.json_agg`, `pg_typeof`,
`hash_record`, … all ran), and the system columns (`ctid`, `xmin`, `tableoid`, …) were readable.
sqlglot's `qualify` resolves each column through the query's scopes (tables, aliases, CTEs,
subqueries) against a schema of the real columns and fails on any it cannot place; a bare table
name used as a column (a whole-row reference, `SELECT o FROM orders o`) is refused here too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify

SYSTEM_COLUMNS = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid", "rowid", "_rowid_"})


def check_columns(
    tree: exp.Expression, *, columns: Mapping[str, Sequence[str]], dialect: str, refuse: type[Exception]
) -> None:
    """Raise `refuse` naming the first column reference that is not a real column."""
    real = {name.lower() for names in columns.values() for name in names}
    for column in tree.find_all(exp.Column):
        if column.name.lower() in SYSTEM_COLUMNS and column.name.lower() not in real:
            raise refuse(f"The system column {column.name} is not allowed; use the table's own columns.")
    schema: dict[str, object] = {table: {name: "text" for name in names} for table, names in columns.items()}
    try:
        qualified = qualify(
            tree.copy(), schema=schema, dialect=dialect, validate_qualify_columns=True,
            quote_identifiers=False, identify=False,
        )
    except OptimizeError as error:
        raise refuse(
            f"{_first_line(error)}: every column must be a real column of the table or CTE it names "
            "(attribute notation such as o.json_agg, which PostgreSQL reads as a function call, is refused)."
        ) from None
    except (SqlglotError, KeyError, ValueError, AttributeError) as error:  # fail closed on sqlglot's limits
        raise refuse(f"The column references could not be checked: {_first_line(error)}") from None
    whole_row = next(qualified.find_all(exp.TableColumn), None)  # how qualify marks `o` on PostgreSQL
    if whole_row is not None:
        raise refuse(f"{whole_row.name} names a table, not a column; whole-row references are not allowed.")
    sources = _source_names(qualified)
    for column in qualified.find_all(exp.Column):
        if not column.table and column.name.lower() in sources and column.name.lower() not in real:
            raise refuse(f"{column.name} names a table, not a column; whole-row references are not allowed.")


def _source_names(tree: exp.Expression) -> set[str]:
    names = {table.name.lower() for table in tree.find_all(exp.Table)}
    names |= {alias.name.lower() for alias in tree.find_all(exp.TableAlias) if alias.name}
    return names


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
