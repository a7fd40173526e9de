"""The scaled profile's warehouse: a DuckLake catalog in PostgreSQL with its Parquet files under a data path
(a local directory here, an object-store URL in production). No Dagster here.

DuckDB loads the `ducklake` and `postgres` extensions from their PyPI packages (`duckdb-extension-ducklake`,
`duckdb-extension-postgres`, built for one DuckDB version each; requirements.lock pins the three together).
Nothing is downloaded at run time: extension auto-install and auto-load are switched off on every connection.

Every connection attaches the lake as `lake` and makes it the default database, so the warehouse's SQL
(`raw.x`, `marts.y`) runs unchanged. Each commit is a DuckLake snapshot: readers see the last committed
snapshot, and a reader can pin an older one (`snapshot`: a version number or a timestamp).
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
import importlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

LAKE_ALIAS = "lake"
# the postgres extension's entry point is named after its historical file name
_EXTENSION_FILES = {"ducklake": ("duckdb_extension_ducklake", "ducklake"),
                    "postgres_scanner": ("duckdb_extension_postgres", "postgres")}


class LakeError(RuntimeError):  # noqa: N818 (the project's errors are *Error)
    """The DuckLake warehouse cannot be reached or opened; the message says why and what to do."""


@dataclass(frozen=True)
class LakeSpec:
    """Where the DuckLake warehouse lives: its PostgreSQL catalog (a libpq connection string) and its data
    path; optionally a snapshot to read (version number, or an ISO timestamp: the snapshot current then)."""

    catalog: str
    data_path: str
    snapshot: str = ""

    def __str__(self) -> str:
        return f"ducklake:postgres:{self.catalog}" + (f" @ snapshot {self.snapshot}" if self.snapshot else "")

    @property
    def name(self) -> str:
        return str(self)

    def at(self, snapshot: str | int | dt.datetime | None) -> "LakeSpec":
        return replace(self, snapshot="" if snapshot is None else str(snapshot))

    def exists(self) -> bool:
        """The catalog database answers (the lake itself is created on first attach)."""
        return catalog_problem(self.catalog) is None


def catalog_problem(catalog: str) -> str | None:
    """Why the PostgreSQL catalog cannot be reached, or None."""
    import psycopg2

    try:
        psycopg2.connect(catalog, connect_timeout=5).close()
    except psycopg2.Error as exc:
        return f"the DuckLake catalog (PostgreSQL: {catalog}) is not reachable: {str(exc).strip().splitlines()[0]}"
    return None


def extension_dir() -> Path:
    """A directory holding the PyPI-packaged extensions under the file names DuckDB expects (symlinks),
    checked against the running DuckDB version."""
    target = Path(os.environ.get("T2C_EXTENSION_DIR") or Path.home() / ".cache" / "tokens2chips" / "extensions")
    version = "v" + duckdb.__version__
    target = target / version
    target.mkdir(parents=True, exist_ok=True)
    for file_name, (module, stem) in _EXTENSION_FILES.items():
        try:
            package = Path(importlib.import_module(module).__file__).parent
        except ImportError:
            raise LakeError(f"the {stem} extension package ({module.replace('_', '-')}) is not installed; "
                            "`make install` installs it from requirements.lock") from None
        built = package / "extensions" / version / f"{stem}.duckdb_extension"
        if not built.exists():
            found = sorted(p.name for p in (package / "extensions").glob("v*"))
            raise LakeError(f"{module.replace('_', '-')} is built for DuckDB {', '.join(found)}, not {duckdb.__version__}; "
                            "pin duckdb to the extension's version (requirements.lock)")
        link = target / f"{file_name}.duckdb_extension"
        if not link.exists() or link.resolve() != built.resolve():
            tmp = link.with_name(f".{link.name}.{os.getpid()}")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(built)
            os.replace(tmp, link)
    return target


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def attach_sql(spec: LakeSpec, read_only: bool = False) -> str:
    options = [f"data_path {_literal(spec.data_path)}", "metadata_schema 'ducklake'"]
    if read_only:
        options.append("read_only")
    if spec.snapshot:
        if re.fullmatch(r"\d+", spec.snapshot):
            options.append(f"snapshot_version {int(spec.snapshot)}")
        else:
            try:
                dt.datetime.fromisoformat(spec.snapshot)
            except ValueError:
                raise LakeError(f"snapshot {spec.snapshot!r} is neither a version number nor an ISO timestamp") from None
            options.append(f"snapshot_time {_literal(spec.snapshot)}")
    return f"attach {_literal('ducklake:postgres:' + spec.catalog)} as {LAKE_ALIAS} ({', '.join(options)})"


# writer connections of this process, one DuckDB instance per lake: attaching (extensions, catalog) costs about
# 0.5 s, so each later connection is a cursor on it (its own transactions and temp tables)
_ATTACHED: dict[LakeSpec, duckdb.DuckDBPyConnection] = {}


def connect(spec: LakeSpec, *, read_only: bool = False, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake attached and in use. `config` settings that would stop
    the attach (no external access, a locked configuration) are applied after it. Plain writer connections
    share one attached instance per process (each a cursor of it)."""
    if not read_only and not config and not spec.snapshot:
        base = _ATTACHED.get(spec)
        if base is None:
            base = _ATTACHED[spec] = _open(spec, read_only=False, config={})
        cursor = base.cursor()
        cursor.execute(f"use {LAKE_ALIAS}")
        return cursor
    return _open(spec, read_only=read_only, config=config)


def _open(spec: LakeSpec, *, read_only: bool, config: dict | None) -> duckdb.DuckDBPyConnection:
    config = dict(config or {})
    late = {k: config.pop(k) for k in ("enable_external_access", "lock_configuration") if k in config}
    if spec.snapshot:
        read_only = True  # a pinned snapshot is history: never written
    con = duckdb.connect(config={**config, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        directory = extension_dir()
        for file_name in _EXTENSION_FILES:
            con.execute(f"load {_literal(str(directory / (file_name + '.duckdb_extension')))}")
        if "://" not in spec.data_path:  # a local data path (an object-store URL needs no directory)
            Path(spec.data_path).mkdir(parents=True, exist_ok=True)
        con.execute(attach_sql(spec, read_only))
        con.execute(f"use {LAKE_ALIAS}")
        if late.get("enable_external_access") is False and "://" not in spec.data_path:
            # the lake's own Parquet files stay readable; every other file stays out of reach
            directory = str(Path(spec.data_path).resolve()).rstrip("/") + "/"
            con.execute(f"set allowed_directories = [{_literal(directory)}]")
        for key in ("enable_external_access", "lock_configuration"):
            if key in late:
                con.execute(f"set {key} = {str(bool(late[key])).lower()}")
    except duckdb.Error as exc:
        con.close()
        message = str(exc).splitlines()[0]
        raise LakeError(f"cannot open the DuckLake warehouse {spec}: {message}") from None
    except BaseException:
        con.close()
        raise
    return con


def snapshots(con: duckdb.DuckDBPyConnection) -> list[tuple[int, dt.datetime, dict]]:
    """(version, time, changes) of every snapshot of the attached lake, oldest first."""
    return [(int(v), t, c) for v, t, _, c, *_ in con.execute(f"select * from {LAKE_ALIAS}.snapshots()").fetchall()]


def is_conflict(exc: BaseException) -> bool:
    """A commit that lost a race with another writer's commit (retry it)."""
    text = str(exc).lower()
    return "conflict" in text or "concurrent" in text


@contextmanager
def day_lock(catalog: str, table: str, day: dt.date):
    """Hold a PostgreSQL advisory lock on (table, day) in the catalog's database while the block runs, so two
    loads of one day-partition never overlap (the second waits, then replaces the first's rows). The lock goes
    with the session: a killed worker releases it. Without a catalog (the embedded DuckDB file, whose file
    lock already serialises writers) nothing is taken."""
    if not catalog:
        yield
        return
    import psycopg2

    con = psycopg2.connect(catalog)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("select pg_advisory_lock(hashtext(%s), %s)", (table, day.toordinal()))
        yield
    finally:
        con.close()  # ends the session: the lock is released


# tables whose rows arrive continuously (call-log day-partitions): a point-in-time run reads them as the lake held
# them at the end of its as-of date, not as they are now
TIME_TRAVEL_TABLES = ("raw.call_log_daily",)


def as_of_reads(con: duckdb.DuckDBPyConnection, sql: str, as_of: dt.date) -> str:
    """`sql` with every read of a TIME_TRAVEL_TABLES table pinned to the snapshot current at the end of `as_of`
    (DuckLake time travel); a table with no snapshot by then reads as empty (nothing was loaded yet)."""
    stamp = f"timestamp '{as_of.isoformat()} 23:59:59.999999'"
    for table in TIME_TRAVEL_TABLES:
        try:
            con.execute(f"select 1 from {table} at (timestamp => {stamp}) limit 0")
            source = f"(select * from {table} at (timestamp => {stamp}))"
        except duckdb.Error:  # no snapshot yet at that time, or the table did not exist in it
            source = f"(select * from {table} limit 0)"
        name = table.split(".")[1]
        pattern = re.compile(r"\b(from|join)(\s+)" + re.escape(table) + r"\b(\s+as\s+\w+)?", re.IGNORECASE)
        sql = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{source}{m.group(3) or ' as ' + name}", sql)
    return sql
