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
    for schema in SCHEMAS:
        con.execute(f"create schema if not exists {schema}")


def replace_table(con: duckdb.DuckDBPyConnection, table: str, select_sql: str) -> int:
    """Build `table` from `select_sql` under a temporary name, then swap it in within one transaction.

    If the select fails, nothing is swapped and the previous table stays exactly as it was.
    """
    schema, name = table.split(".")
    ensure_schemas(con)
    staging_name = f"{schema}.{quote_ident('__new_' + name)}"
    con.execute(f"drop table if exists {staging_name}")
    try:
        con.execute(f"create table {staging_name} as {select_sql}")
        con.execute("begin transaction")
        try:
            con.execute(f"drop table if exists {schema}.{quote_ident(name)}")
            con.execute(f"alter table {staging_name} rename to {quote_ident(name)}")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    finally:
        con.execute(f"drop table if exists {staging_name}")
    return con.execute(f"select count(*) from {schema}.{quote_ident(name)}").fetchone()[0]


def replace_table_from_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Atomically replace `table` with the rows of a polars frame."""
    view = "_frame_" + table.replace(".", "_")
    con.register(view, frame.to_arrow())
    try:
        return replace_table(con, table, f"select * from {view}")
    finally:
        con.unregister(view)


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
