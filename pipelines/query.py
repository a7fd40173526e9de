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

from pathlib import Path

import duckdb
import polars as pl

from assets.warehouse import connect

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
