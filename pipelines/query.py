"""Read-only SQL for analysts: `tokens2chips query`.

Three layers, so that a query can neither change the warehouse nor reach outside it:
1. the statement must be a single SELECT (incl. WITH/SHOW/DESCRIBE/SUMMARIZE/PRAGMA show_*) or EXPLAIN;
   INSERT/UPDATE/DELETE/CREATE/DROP/ALTER/COPY/ATTACH/DETACH/INSTALL/LOAD/SET/EXPORT/CALL/... are refused
   before DuckDB sees them;
2. the database is opened read-only;
3. with `enable_external_access = false` and `lock_configuration = true`: no file readers or writers
   (read_csv, glob, COPY, EXPORT), no extension installs or loads, no settings changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import polars as pl

from warehouse.io import connect

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
READ_ONLY_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class QueryRefused(ValueError):
    """The statement is not a read-only query of the warehouse."""


def open_read_only(path: Path, wait_s: float = 10.0) -> duckdb.DuckDBPyConnection:
    return connect(path, read_only=True, config=READ_ONLY_CONFIG, wait_s=wait_s)


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise QueryRefused unless `sql` is exactly one SELECT or EXPLAIN statement."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.ParserException as exc:
        raise QueryRefused(f"the SQL does not parse: {exc}") from None
    if not statements:
        raise QueryRefused("no SQL statement given")
    if len(statements) > 1:
        raise QueryRefused(f"one statement per query ({len(statements)} given)")
    kind = statements[0].type
    if kind not in ALLOWED:
        raise QueryRefused(
            f"{kind.name} statements are not allowed: `tokens2chips query` is read-only "
            "(SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE and EXPLAIN only)"
        )


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    """Check the statement, run it, and return its rows. Errors are QueryRefused (not allowed) or
    duckdb.Error (a mistake in the query)."""
    check_statement(con, sql)
    try:
        return con.sql(sql).pl()
    except duckdb.PermissionException as exc:
        raise QueryRefused(f"the query reads or writes outside the warehouse, which is disabled ({exc})") from None


SHOW_TABLES = re.compile(r"^\s*show\s+tables\s*;?\s*$", re.IGNORECASE)


def rewrite_show_tables(sql: str) -> str:
    """`show tables` lists only the default schema, which is empty here: list every schema's tables."""
    return "show all tables" if SHOW_TABLES.match(sql) else sql


def flatten_nested(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists, structs and arrays as JSON text (CSV has no nested values)."""
    nested = [c for c, t in frame.schema.items() if t.is_nested()]
    if not nested:
        return frame
    return frame.with_columns(pl.Series(c, [None if v is None else json.dumps(v, default=str)
                                            for v in frame[c].to_list()], dtype=pl.Utf8) for c in nested)


def _is_year(column: str) -> bool:
    """A column of calendar years (`year`, `fx_year`, `year(period_start)`): printed without separators."""
    return "year" in column.lower()


def _cell(value, dtype, column: str = "") -> str:
    if value is None:
        return "NULL"
    if dtype.is_float():
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        magnitude = abs(value)
        if magnitude >= 1e15 or (0 < magnitude < 1e-4):
            return f"{value:.4g}"
        if magnitude >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.4g}" if magnitude >= 1 else f"{value:.4g}"
    if dtype.is_integer():
        return str(value) if _is_year(column) else f"{value:,}"
    if dtype.is_nested():
        return json.dumps(value, default=str)
    return str(value).replace("\n", "\\n").replace("\t", "\\t")


def format_table(frame: pl.DataFrame, max_rows: int, max_width: int = 40) -> str:
    """An aligned text table as a SQL console prints it: numbers right-aligned with thousands
    separators, long cells cut with an ellipsis, and a footer with the row count."""
    shown = frame.head(max_rows) if max_rows >= 0 else frame
    columns = list(frame.columns)
    cells = [[_cell(v, frame.schema[c], c) for v in shown[c].to_list()] for c in columns]
    cells = [[v if len(v) <= max_width else v[: max_width - 1] + "…" for v in col] for col in cells]
    widths = [max([len(c)] + [len(v) for v in col]) for c, col in zip(columns, cells)]
    numeric = [frame.schema[c].is_numeric() for c in columns]

    def line(values):
        return " | ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), "-+-".join("-" * w for w in widths)]
    out += [line([col[i] for col in cells]) for i in range(shown.height)]
    footer = f"{frame.height:,} row{'s' if frame.height != 1 else ''}"
    if shown.height < frame.height:
        footer += f" ({shown.height:,} shown; --max-rows N to change, --format csv for all)"
    out.append(footer)
    return "\n".join(out)
