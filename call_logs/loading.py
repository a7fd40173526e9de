"""Load day-partitions of request-level call logs into raw.call_log_daily and raw.call_log_rejects.

All work happens inside DuckDB, streaming over the days' files; nothing row-level enters Python. Pass 1
aggregates every row by (file, model, provider, status); pass 2 reads only what pass 1 cannot settle and
lists the bad rows with file, row number and reason. Three paths:
  * CSV in day folders (one header): a parallel typed scan whose cast failures (unparseable timestamps,
    non-numeric or missing counts, unknown statuses) DuckDB stores with their line numbers. Pass 1 also
    groups by one cheap per-row test (counts non-negative, integral and finite; timestamp in its day),
    so the clean groups are final; pass 2 re-reads, in parallel, only the files with unclean rows and
    numbers them by insertion order (call_logs/csv_format.py).
  * typed Parquet in day folders: the row-group statistics (null counts, min, max) say which files may
    hold bad rows, so pass 1 is a plain aggregation; pass 2 reads, per suspect file, only the row groups
    whose statistics allow a bad row (single-column filters pushed into the scan).
  * other inputs (text-typed Parquet, flat files, CSV files of differing headers): pass 1 counts the
    rows failing the checks (and for Parquet lists them with row numbers); pass 2 re-reads the files
    with bad rows (CSV in order, to number the rows). The bad rows are subtracted from pass 1's groups.
  The last two: call_logs/generic.py. The row rules are one SQL template for every path
  (sql/call_logs/reject_reason.sql.j2, call_logs/rules.py). This module finds the day-partitions and what
  changed, and replaces the days (sql/call_logs/replace_days.sql.j2: delete + insert, one transaction per
  batch); shared pieces in call_logs/config.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from call_logs.config import (CANONICAL, REQUIRED, SUFFIXES, TEMP_TABLES, CallLogConfig, CallLogError, ColumnMap,
                              day_by_file, file_format)
from call_logs.csv_format import csv_day_header, csv_day_passes, csv_headers
from call_logs.generic import file_reader, generic_passes
from call_logs.rules import render
from warehouse.io import ensure_schemas, quote_ident, quote_text

__all__ = ["CallLogConfig", "CallLogError", "Layout", "changed_days", "day_files", "discover", "fingerprint",
           "flat_days", "load_day", "load_days"]

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


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


def flat_days(con: duckdb.DuckDBPyConnection, files: list[Path], cfg: CallLogConfig) -> list[dt.date]:
    """The days that flat (un-partitioned) files cover."""
    if not files:
        return []
    ts = f"try_cast({quote_ident(cfg.columns['timestamp'])} as timestamp)"
    reader = file_reader(files, file_format(files))
    rows = con.execute(f"select distinct cast({ts} as date) from {reader} where {ts} is not null").fetchall()
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
    """Days whose files are new or changed since meta.call_log_partitions recorded them (read-only: a
    warehouse without that table has loaded nothing yet)."""
    try:
        loaded = dict(con.execute("select day, fingerprint from meta.call_log_partitions").fetchall())
    except duckdb.CatalogException:
        loaded = {}
    return sorted(day for day, (files, _) in files_by_day.items() if loaded.get(day) != fingerprint(files))


def _columns(con, reader: str, files: list[Path], cfg: CallLogConfig,
             headers: dict[Path, list[str]] | None) -> ColumnMap:
    """The mapped columns and their types: CSV `headers` are all text; Parquet is described by DuckDB."""
    try:
        if headers is not None:
            present = {name: "VARCHAR" for header in headers.values() for name in header}
        else:
            present = {r[0]: r[1] for r in con.execute(f"describe select * from {reader}").fetchall()}
    except duckdb.Error as exc:
        raise CallLogError(f"cannot read call-log file(s) {', '.join(str(f) for f in files)}: "
                           f"{str(exc).splitlines()[0]}") from None
    sources = {}
    for name in CANONICAL:
        source = cfg.columns.get(name)
        if source and source in present:
            sources[name] = source
        elif name in REQUIRED:
            raise CallLogError(f"{files[0]}: column '{source}' (mapped to {name}) not found; "
                               f"columns: {sorted(present)}")
    return ColumnMap(sources, {name: present[source] for name, source in sources.items()})


def load_days(con: duckdb.DuckDBPyConnection, days: dict[dt.date, tuple[list[Path], bool]],
              cfg: CallLogConfig) -> dict[dt.date, dict]:
    """Replace several day-partitions: one streaming scan over all their files, then delete + insert of
    exactly those days in one transaction, which also records each day in meta.call_log_partitions with
    the fingerprint its files had before they were read. Returns counts per day. If the batch cannot be read (a broken
    file), each day is loaded on its own so that the readable days still load; the broken ones raise
    CallLogError naming their files (collected in the `errors` key of the result)."""
    ensure_schemas(con)
    if not days:
        return {}
    started = time.perf_counter()
    hive = {d: f for d, (f, flat) in days.items() if not flat}
    flat = {d: f for d, (f, is_flat) in days.items() if is_flat}
    try:
        results = {}
        if hive:
            results.update(_load_batch(con, hive, cfg, from_flat=False, started=started))
        if flat:
            results.update(_load_batch(con, flat, cfg, from_flat=True, started=started))
    except CallLogError:
        if len(days) == 1:
            raise
        results, errors = {}, {}
        for day, spec in days.items():
            try:
                results.update(load_days(con, {day: spec}, cfg))
            except CallLogError as exc:
                errors[day] = str(exc)
        results["errors"] = errors
    return results


def load_day(con: duckdb.DuckDBPyConnection, day: dt.date, files: list[Path], cfg: CallLogConfig,
             from_flat: bool = False) -> dict:
    """Replace one day-partition (see load_days)."""
    return load_days(con, {day: (files, from_flat)}, cfg)[day]


def _load_batch(con, days: dict[dt.date, list[Path]], cfg: CallLogConfig, from_flat: bool,
                started: float) -> dict[dt.date, dict]:
    """Pass 1 aggregates all rows per file and group; pass 2 reads only what pass 1 cannot settle and lists
    the bad rows with row number and reason (see the module docstring). Then the days are replaced in one
    transaction."""
    # taken before the read: a file that changes meanwhile keeps a stale fingerprint and is loaded again
    prints = {day: fingerprint(fs) for day, fs in days.items()}
    files = sorted({f for fs in days.values() for f in fs})
    fmt = file_format(files)
    headers = csv_headers(files) if fmt == "csv" else None
    col = _columns(con, file_reader(files, fmt), files, cfg, headers)
    ok = ", ".join(quote_text(s) for s in cfg.status_ok) or "''"
    failed = ", ".join(quote_text(s) for s in cfg.status_failed) or "''"
    day_header = csv_day_header(headers) if headers and not from_flat else None
    file_day = day_by_file(days)
    # one transaction for the whole batch: the days are replaced at its commit (or not at all), and the
    # many small statements on temp tables skip a commit each
    con.execute("begin transaction")
    try:
        if not from_flat:
            file_days = ", ".join(f"({i}, date '{file_day[f]}', {quote_text(str(f))})" for i, f in enumerate(files))
            con.execute(f"create or replace temp table _file_day as "
                        f"select * from (values {file_days}) t(file_index, day, file)")
        if day_header:
            rejects = csv_day_passes(con, files, day_header, col, cfg, ok, failed)
        else:
            rejects = generic_passes(con, files, file_day, fmt, col, ok, failed, from_flat)
        results = _replace_days(con, days, prints, failed, rejects, subtract=not day_header, from_flat=from_flat,
                                started=started)
        con.execute("commit")
        return results
    except BaseException:
        con.execute("rollback")
        raise
    finally:  # temp tables live as long as the connection: dropped here, all in one call
        con.execute(";".join(["drop view if exists _batch_days", *(f"drop table if exists {t}" for t in TEMP_TABLES)]))


def _replace_days(con, days: dict[dt.date, list[Path]], prints: dict[dt.date, str], failed: str,
                  rejects: list[str], subtract: bool, from_flat: bool, started: float) -> dict[dt.date, dict]:
    """Delete + insert the batch's days (in the batch's transaction; sql/call_logs/replace_days.sql.j2): the
    valid groups (pass 1's groups less the bad rows of the same file and group when `subtract`), the
    rejects (the temp tables `rejects`), and each day's row of meta.call_log_partitions (SQL literals:
    dates, hex digests and numbers; binding Python parameters would import pandas, ~0.5 s, in a fresh
    process)."""
    seconds = (time.perf_counter() - started) / len(days)
    sql = render("replace_days", days=[f"date '{d}'" for d in days], failed=failed,
                 subtract=subtract and "_call_log_bad" in rejects, from_flat=from_flat, rejects=rejects,
                 recorded=[f"(date '{d}', '{prints[d]}', {len(fs)})" for d, fs in days.items()], seconds=seconds)
    counts = con.execute(sql).fetchall()
    return {d: {"day": d, "files": n, "rows_loaded": int(loaded), "rows_rejected": int(rejected), "seconds": secs}
            for d, n, loaded, rejected, secs in counts}
