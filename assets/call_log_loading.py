"""Load one day of request-level call logs into raw.call_log_daily and raw.call_log_rejects.

All work is one aggregation inside DuckDB that streams over the day's files: valid rows are summed per
(day, model, provider); each invalid row becomes its own group carrying its file, row number and reason,
so one scan yields both the aggregate and the rejects. Nothing row-level enters Python.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from assets.warehouse import ensure_schemas

CANONICAL = ("timestamp", "model", "provider", "prompt_tokens", "completion_tokens", "cached_tokens",
             "reasoning_tokens", "status")
REQUIRED = ("timestamp", "model", "prompt_tokens", "completion_tokens")
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".gz": "csv"}


class CallLogError(ValueError):
    """A call-log file or partition cannot be read; the message names the file."""


@dataclass(frozen=True)
class CallLogConfig:
    columns: dict[str, str]
    status_ok: tuple[str, ...]
    status_failed: tuple[str, ...]
    memory_limit: str = "1GB"
    temp_directory: str = "var/duckdb_tmp"

    @staticmethod
    def raw(path: Path | str) -> dict:
        path = Path(path)
        if not path.is_file():
            raise CallLogError(f"call-log config {path} not found")
        return yaml.safe_load(path.read_text()) or {}

    @classmethod
    def load(cls, path: Path | str) -> "CallLogConfig":
        raw = cls.raw(path)
        preset = raw.get("preset", "default")
        columns = dict(raw.get("columns") or raw["presets"][preset])
        missing = [c for c in REQUIRED if not columns.get(c)]
        if missing:
            raise CallLogError(f"{path}: column mapping lacks {missing}")
        return cls(columns, tuple(str(s) for s in raw.get("status_ok", [])),
                   tuple(str(s) for s in raw.get("status_failed", [])), str(raw.get("memory_limit", "1GB")),
                   str(raw.get("temp_directory", "var/duckdb_tmp")))


@dataclass
class Layout:
    """Files of a call-log directory: per-day (hive `date=` folders) and flat ones."""

    by_day: dict[dt.date, list[Path]] = field(default_factory=dict)
    flat: list[Path] = field(default_factory=list)


def discover(root: Path) -> Layout:
    root = Path(root)
    if not root.is_dir():
        raise CallLogError(f"call-log directory {root} does not exist")
    layout = Layout()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SUFFIXES):
        day = next((m.group(1) for part in path.relative_to(root).parts if (m := _DATE_DIR.match(part))), None)
        if day:
            layout.by_day.setdefault(dt.date.fromisoformat(day), []).append(path)
        else:
            layout.flat.append(path)
    return layout


def fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _fmt(files: list[Path]) -> str:
    kinds = {SUFFIXES[p.suffix] for p in files}
    if len(kinds) != 1:
        raise CallLogError(f"mixed Parquet and CSV files in one partition: {[str(p) for p in files]}")
    return kinds.pop()


def _sql_list(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"


def flat_days(con: duckdb.DuckDBPyConnection, files: list[Path], cfg: CallLogConfig) -> list[dt.date]:
    """The days that flat (un-partitioned) files cover."""
    if not files:
        return []
    ts = cfg.columns["timestamp"]
    reader = _reader(files, _fmt(files), cfg, typed=False)
    rows = con.execute(f'select distinct cast(try_cast("{ts}" as timestamp) as date) from {reader} '
                       f'where try_cast("{ts}" as timestamp) is not null').fetchall()
    return sorted(r[0] for r in rows)


def day_files(root: Path, cfg: CallLogConfig, con: duckdb.DuckDBPyConnection) -> dict[dt.date, tuple[list[Path], bool]]:
    """Files per day: hive `date=` folders, plus flat files for every day they cover (from_flat=True)."""
    layout = discover(root)
    out = {day: (files, False) for day, files in layout.by_day.items()}
    for day in flat_days(con, layout.flat, cfg):
        if day in out:
            raise CallLogError(f"day {day} has both a date= folder and rows in flat files; use one layout")
        out[day] = (layout.flat, True)
    return out


def changed_days(con: duckdb.DuckDBPyConnection, files_by_day: dict) -> list[dt.date]:
    """Days whose files are new or changed since meta.call_log_partitions recorded them."""
    ensure_schemas(con)
    loaded = dict(con.execute("select day, fingerprint from meta.call_log_partitions").fetchall())
    return sorted(day for day, (files, _) in files_by_day.items() if loaded.get(day) != fingerprint(files))


def record_partition(con: duckdb.DuckDBPyConnection, result: dict, files: list[Path]) -> None:
    con.execute("delete from meta.call_log_partitions where day = ?", [result["day"]])
    con.execute("insert into meta.call_log_partitions values (?, ?, ?, ?, ?, current_timestamp, ?)",
                [result["day"], fingerprint(files), result["files"], result["rows_loaded"], result["rows_rejected"],
                 result["seconds"]])


def _reader(files: list[Path], fmt: str, cfg: CallLogConfig, typed: bool = True) -> str:
    if fmt == "parquet":
        return f"read_parquet({_sql_list(files)}, filename = true, file_row_number = true, union_by_name = true, " \
               "hive_partitioning = false)"
    return f"read_csv({_sql_list(files)}, filename = true, hive_partitioning = false, union_by_name = true, " \
           "all_varchar = true, header = true)"


def load_day(con: duckdb.DuckDBPyConnection, day: dt.date, files: list[Path], cfg: CallLogConfig,
             from_flat: bool = False) -> dict:
    """Replace one day-partition (delete + insert in one transaction). Returns counts for run metadata."""
    ensure_schemas(con)
    started = time.perf_counter()
    fmt = _fmt(files)
    reader = _reader(files, fmt, cfg)
    try:
        present = {r[0] for r in con.execute(f"describe select * from {reader}").fetchall()}
    except duckdb.Error as exc:
        raise CallLogError(f"cannot read call-log files for {day} ({', '.join(str(f) for f in files)}): "
                           f"{str(exc).splitlines()[0]}") from None
    col = {}
    for name in CANONICAL:
        source = cfg.columns.get(name)
        if source and source in present:
            col[name] = f'"{source}"'
        elif name in REQUIRED:
            raise CallLogError(f"{files[0]}: column '{source}' (mapped to {name}) not found; columns: {sorted(present)}")
        else:
            col[name] = "null"
    row_number = "file_row_number + 1" if fmt == "parquet" else "null"
    ok = ", ".join(f"'{s}'" for s in cfg.status_ok) or "''"
    failed = ", ".join(f"'{s}'" for s in cfg.status_failed) or "''"
    src = _checked(reader, row_number, col, day, ok, failed, from_flat)
    sql = f"""
        with src as ({src}),
        grouped as (
            select
                case when reason is null then model end as model,
                case when reason is null then provider end as provider,
                case when reason is not null then filename end as file,
                case when reason is not null then row_number end as row_number,
                reason,
                count(*) as requests,
                count(*) filter (where status in ({failed})) as failed_requests,
                sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
                sum(cached_tokens) as cached_tokens, sum(reasoning_tokens) as reasoning_tokens
            from src
            group by all
        )
        select * from grouped
    """
    tmp = "_call_log_day"
    try:
        con.execute(f"create or replace temp table {tmp} as {sql}")
    except duckdb.Error as exc:
        raise CallLogError(f"cannot load call logs for {day} from {', '.join(str(f) for f in files)}: "
                           f"{str(exc).splitlines()[0]}") from None
    if fmt == "csv":
        # CSV has no row-number column: re-read the (rare) files with rejects in file order, numbered
        bad_files = [r[0] for r in con.execute(f"select distinct file from {tmp} where reason is not null").fetchall()]
        for path in bad_files:
            quoted = path.replace("'", "''")
            numbered = _checked(f"read_csv(['{quoted}'], filename = true, all_varchar = true, header = true, "
                                "parallel = false, hive_partitioning = false)", "row_number() over ()", col, day,
                                ok, failed, from_flat)
            con.execute(f"delete from {tmp} where file = '{quoted}' and reason is not null")
            con.execute(f"""insert into {tmp} (file, row_number, reason, requests)
                            select filename, row_number, reason, 1 from ({numbered}) where reason is not null""")
    con.execute("begin transaction")
    try:
        con.execute(f"delete from raw.call_log_daily where day = date '{day}'")
        con.execute(f"delete from raw.call_log_rejects where day = date '{day}'")
        con.execute(f"""insert into raw.call_log_daily
            select date '{day}', model, provider, sum(requests), sum(failed_requests),
                   cast(sum(prompt_tokens) as bigint), cast(sum(completion_tokens) as bigint),
                   cast(sum(cached_tokens) as bigint), cast(sum(reasoning_tokens) as bigint)
            from {tmp} where reason is null group by all""")
        con.execute(f"""insert into raw.call_log_rejects
            select date '{day}', file, row_number, reason from {tmp} where reason is not null""")
        counts = con.execute(f"""select coalesce(sum(requests) filter (where reason is null), 0),
                                        count(*) filter (where reason is not null) from {tmp}""").fetchone()
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    con.execute(f"drop table if exists {tmp}")
    return {"day": day, "rows_loaded": int(counts[0]), "rows_rejected": int(counts[1]), "files": len(files),
            "seconds": time.perf_counter() - started}


def _checked(reader: str, row_number: str, col: dict, day: dt.date, ok: str, failed: str, from_flat: bool) -> str:
    """Every row of `reader` with its typed values and the reason it is rejected (null = valid)."""
    tok = {t: f"try_cast({col[t]} as double)" for t in TOKENS}
    ts = f"try_cast({col['timestamp']} as timestamp)"
    bad_tokens = " or ".join(f"({col[t]} is not null and {tok[t]} is null) or {tok[t]} <> floor({tok[t]})"
                             for t in TOKENS)
    negative = " or ".join(f"{tok[t]} < 0" for t in TOKENS)
    status = f"cast({col['status']} as varchar)" if col["status"] != "null" else "null"
    day_filter = f"where cast({ts} as date) = date '{day}'" if from_flat else ""
    return f"""
        select filename, {row_number} as row_number, {ts} as ts,
               cast({col['model']} as varchar) as model, cast({col['provider']} as varchar) as provider,
               {tok['prompt_tokens']} as prompt_tokens, {tok['completion_tokens']} as completion_tokens,
               {tok['cached_tokens']} as cached_tokens, {tok['reasoning_tokens']} as reasoning_tokens,
               {status} as status,
               case
                   when {ts} is null then 'unparseable timestamp'
                   when cast({ts} as date) <> date '{day}' then 'timestamp outside its day partition'
                   when {col['model']} is null then 'missing model'
                   when {tok['prompt_tokens']} is null or {tok['completion_tokens']} is null
                       then 'missing or non-numeric token count'
                   when {bad_tokens} then 'non-integer token count'
                   when {negative} then 'negative token count'
                   when {status} is not null and {status} not in ({ok}, {failed}) then 'unknown status'
               end as reason
        from {reader}
        {day_filter}"""
