"""Warehouse helpers shared by every asset: atomic table replacement and SQL-file loading."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SCHEMAS = ("raw", "staging", "marts", "meta")
_TABLE_REF = re.compile(r"\b(raw|staging|marts|meta)\.([a-z_][a-z0-9_]*)\b")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas, and the tables whose definitions live in sql/ddl/ (written incrementally)."""
    for schema in SCHEMAS:
        con.execute(f"create schema if not exists {schema}")
    for ddl in sorted((SQL_DIR / "ddl").glob("*.sql")):
        con.execute(_ddl_text(ddl))


@cache
def _ddl_text(path: Path) -> str:
    return path.read_text()


def replace_tables(con: duckdb.DuckDBPyConnection, selects: dict[str, str]) -> dict[str, int]:
    """Build every `schema.table` from its select under a temporary name, then swap them all in
    within one transaction.

    If any select fails, nothing is swapped and the previous tables stay exactly as they were.
    """
    ensure_schemas(con)
    staged = {}
    try:
        for table, select_sql in selects.items():
            schema, name = table.split(".")
            staged[table] = f"{schema}.{quote_ident('__new_' + name)}"
            con.execute(f"drop table if exists {staged[table]}")
            con.execute(f"create table {staged[table]} as {select_sql}")
        con.execute("begin transaction")
        try:
            for table, tmp in staged.items():
                schema, name = table.split(".")
                con.execute(f"drop table if exists {schema}.{quote_ident(name)}")
                con.execute(f"alter table {tmp} rename to {quote_ident(name)}")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    finally:
        for tmp in staged.values():
            con.execute(f"drop table if exists {tmp}")
    return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in selects}


def replace_table(con: duckdb.DuckDBPyConnection, table: str, select_sql: str) -> int:
    """Atomically replace one table with the rows of `select_sql` (see replace_tables)."""
    return replace_tables(con, {table: select_sql})[table]


def replace_tables_from_frames(con: duckdb.DuckDBPyConnection, frames: dict[str, pl.DataFrame]) -> dict[str, int]:
    """Atomically replace several tables with the rows of polars frames."""
    views = {table: "_frame_" + table.replace(".", "_") for table in frames}
    for table, view in views.items():
        con.register(view, frames[table].to_arrow())
    try:
        return replace_tables(con, {table: f"select * from {view}" for table, view in views.items()})
    finally:
        for view in views.values():
            con.unregister(view)


def replace_table_from_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Atomically replace `table` with the rows of a polars frame."""
    return replace_tables_from_frames(con, {table: frame})[table]


@cache
def sql_files() -> dict[str, Path]:
    """Every SQL model: `schema.table` -> file (sql/<schema>/<table>.sql)."""
    return {
        f"{path.parent.name}.{path.stem}": path
        for path in sorted(SQL_DIR.glob("*/*.sql"))
        if path.parent.name in SCHEMAS
    }


def read_sql(table: str) -> str:
    return sql_files()[table].read_text()


def referenced_tables(sql: str) -> list[str]:
    """The `schema.table` names a SQL text reads, in order of first appearance."""
    seen: dict[str, None] = {}
    for schema, name in _TABLE_REF.findall(re.sub(r"--[^\n]*", "", sql)):
        seen[f"{schema}.{name}"] = None
    return list(seen)


def table_preview(con: duckdb.DuckDBPyConnection, table: str, limit: int = 5) -> str:
    frame = con.execute(f"select * from {table} limit {limit}").pl()
    header = "| " + " | ".join(frame.columns) + " |"
    sep = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, sep, *rows])
