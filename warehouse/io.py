"""Warehouse helpers shared by every asset: atomic table replacement and SQL-file loading."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import time
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
# raw: files as loaded; staging: typed raw; marts: analysis-ready facts and model outputs; model_inputs:
# the frames the models read (built from marts); meta: configuration and run records
SCHEMAS = ("raw", "staging", "marts", "model_inputs", "meta")
_TABLE_REF = re.compile(r"\b(" + "|".join(SCHEMAS) + r")\.([a-z_][a-z0-9_]*)\b")


class WarehouseError(RuntimeError):
    """The warehouse file cannot be opened or written; the message says why and what to do."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the DuckDB file lock (a run, or an analyst's session on the live file)."""


def _is_lake(target) -> bool:
    from warehouse.lake import LakeSpec

    return isinstance(target, LakeSpec)


def published_copy(warehouse: Path) -> Path:
    """The read-only snapshot analysts query: var/warehouse.duckdb -> var/warehouse.published.duckdb. A DuckLake
    warehouse is its own published copy (readers see the last committed snapshot)."""
    if _is_lake(warehouse):
        return warehouse
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.stem + ".published" + warehouse.suffix)


def not_a_database(path: str | Path) -> str | None:
    """Why `path` cannot be a warehouse (a directory, or a file without DuckDB's header), else None.
    A path that does not exist yet is fine: the run creates it. A DuckLake warehouse: its catalog must answer."""
    if _is_lake(path):
        from warehouse.lake import catalog_problem

        return catalog_problem(path.catalog)
    path = Path(path)
    if path.is_dir():
        return f"the warehouse {path} is a directory, not a DuckDB file"
    if not path.exists():
        return None
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        return f"the warehouse {path} cannot be read ({exc.strerror or exc})"
    if len(head) < 12 or head[8:12] != b"DUCK":
        return (f"{path} exists but is not a DuckDB database file; point --warehouse at a .duckdb file "
                "(or a path that does not exist yet, which the run creates)")
    return None


def connect(database: str | Path, *, read_only: bool = False, config: dict | None = None,
            wait_s: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting up to `wait_s` seconds while another process holds its lock.

    Errors are WarehouseError with the path, the cause and the remedy in the message (no DuckDB
    traceback reaches the user). `database` may be a warehouse.lake.LakeSpec (the scaled profile): an
    in-memory connection with the lake attached and in use.
    """
    if _is_lake(database):
        from warehouse import lake

        try:
            return lake.connect(database, read_only=read_only, config=config)
        except lake.LakeError as exc:
            raise WarehouseError(str(exc)) from None
    deadline = time.monotonic() + wait_s
    delay = 0.1
    while True:
        try:
            return duckdb.connect(str(database), read_only=read_only, config=config or {})
        except duckdb.Error as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise WarehouseError(f"cannot open the warehouse {database}: {message}") from None
            if time.monotonic() >= deadline:
                holder = re.search(r"\(PID (\d+)\)", message)
                who = f"process {holder.group(1)}" if holder else "another process"
                raise WarehouseLockedError(
                    f"the warehouse {database} is locked by {who} (waited {wait_s:.0f}s). Another run may be "
                    f"writing it, or a DuckDB session has it open; analysts should query the published copy "
                    f"{published_copy(Path(database)).name} (`tokens2chips query`)."
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def publish(warehouse: Path) -> Path:
    """Checkpoint the warehouse and copy it to the published snapshot: written under a temporary name,
    fsynced and renamed over the old snapshot, so a reader sees the old or the new file, never a mix.
    Readers with the old snapshot open keep reading it (the rename does not touch their open file). A DuckLake
    warehouse publishes at every commit (a snapshot): nothing to copy."""
    if _is_lake(warehouse):
        return warehouse
    warehouse = Path(warehouse)
    con = connect(warehouse)
    try:
        con.execute("checkpoint")
    finally:
        con.close()
    target = published_copy(warehouse)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(warehouse, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WarehouseError(f"cannot publish {target}: {exc.strerror or exc}; the previous snapshot is kept") from None
    return target


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas, and the tables whose definitions live in sql/ddl/ (written incrementally)."""
    con.execute(_schema_sql())


# tables that moved to another schema: dropped from warehouses built before the move, so that no stale
# copy is left for an analyst to query
RETIRED_TABLES = ("staging.forecast_history", "staging.quarterly_demand")


@cache
def _schema_sql() -> str:
    """All of ensure_schemas as one script: one call, not one per statement (it runs on every load)."""
    return ";\n".join([*(f"create schema if not exists {schema}" for schema in SCHEMAS),
                        *(f"drop table if exists {table}" for table in RETIRED_TABLES),
                        *(ddl.read_text() for ddl in sorted((SQL_DIR / "ddl").glob("*.sql")))])


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


def data_as_of(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The as-of date of the warehouse's data: that of its latest successful run (None without runs)."""
    has_runs = con.execute("select count(*) from duckdb_tables() where schema_name = 'meta' "
                           "and table_name = 'runs'").fetchone()[0]
    if not has_runs:
        return None
    hit = con.execute("select as_of from meta.runs where status = 'SUCCESS' order by started_at desc limit 1").fetchone()
    return hit[0] if hit else None
