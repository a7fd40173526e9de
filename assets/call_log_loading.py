"""Load day-partitions of request-level call logs into raw.call_log_daily and raw.call_log_rejects.

All work happens inside DuckDB, streaming over the days' files; nothing row-level enters Python. Pass 1
aggregates every row by (file, model, provider, status); pass 2 reads only what pass 1 cannot settle and
lists the bad rows with file, row number and reason. Three paths:
  * CSV in day folders (one header): a parallel typed scan whose cast failures (unparseable timestamps,
    non-numeric or missing counts, unknown statuses) DuckDB stores with their line numbers. Pass 1 also
    groups by one cheap per-row test (counts non-negative, integral and finite; timestamp in its day),
    so the clean groups are final; pass 2 re-reads, in parallel, only the files with unclean rows and
    numbers them by insertion order (see _csv_day_passes).
  * typed Parquet in day folders: the row-group statistics (null counts, min, max) say which files may
    hold bad rows, so pass 1 is a plain aggregation; pass 2 reads, per suspect file, only the row groups
    whose statistics allow a bad row (single-column filters pushed into the scan).
  * other inputs (text-typed Parquet, flat files, CSV files of differing headers): pass 1 counts the
    rows failing the checks (and for Parquet lists them with row numbers); pass 2 re-reads the files
    with bad rows (CSV in order, to number the rows). The bad rows are subtracted from pass 1's groups.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from assets.warehouse import ensure_schemas, quote_text

CANONICAL = ("timestamp", "model", "provider", "prompt_tokens", "completion_tokens", "cached_tokens",
             "reasoning_tokens", "status")
REQUIRED = ("timestamp", "model", "prompt_tokens", "completion_tokens")
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".gz": "csv"}
# CSV read buffer: 4 MB rather than DuckDB's 32 MB lets both threads share a single day file (an
# incremental run reads one) and balances many files better (bench/ingest_bench.py: about 15% faster);
# it must stay above max_line_size (2 MB)
CSV_BUFFER_BYTES = 4 << 20
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


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
    reader = _reader(files, _fmt(files))
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


def _typed(col: dict, types: dict) -> tuple[str, dict, list[str], list[str]]:
    """SQL for the typed timestamp and token values, the format checks that text columns need, and the
    negative-count checks. Columns that arrive typed (Parquet BIGINT, TIMESTAMP) skip the casts."""
    typed_ts = types.get("timestamp", "").startswith("TIMESTAMP")
    ts = col["timestamp"] if typed_ts else f"try_cast({col['timestamp']} as timestamp)"
    tok, format_checks, negative = {}, [], []
    for t in TOKENS:
        if col[t] == "null" or types.get(t) in INTEGER_TYPES:
            tok[t] = col[t]
        else:
            # NaN, infinities and counts beyond BIGINT parse as doubles but are no token counts: null
            # ("missing or non-numeric token count"), so they never reach a sum
            value = f"try_cast({col[t]} as double)"
            tok[t] = f"(case when abs({value}) < 9.2e18 then {value} end)"
            format_checks.append(f"({col[t]} is not null and {tok[t]} is null) or {tok[t]} <> floor({tok[t]})")
        if col[t] != "null":
            negative.append(f"{tok[t]} < 0")
    return ts, tok, format_checks, negative


def _reader(files: list[Path], fmt: str) -> str:
    if fmt == "parquet":
        return f"read_parquet({_sql_list(files)}, filename = true, file_row_number = true, union_by_name = true, " \
               "hive_partitioning = false)"
    return f"read_csv({_sql_list(files)}, filename = true, hive_partitioning = false, union_by_name = true, " \
           f"all_varchar = true, header = true, buffer_size = {CSV_BUFFER_BYTES})"


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _csv_headers(files: list[Path]) -> dict[Path, list[str]]:
    """Each CSV file's header fields, from its first line (read once per batch: asking DuckDB to describe
    a union_by_name scan would sniff every file)."""
    try:
        return {path: _csv_header(path) for path in files}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CallLogError(f"cannot read the header of call-log file(s) {', '.join(str(f) for f in files)}: "
                           f"{exc}") from None


def _csv_day_header(headers: dict[Path, list[str]]) -> list[str] | None:
    """The one header of CSV day files that _csv_day_scan can read; None when the files' headers differ,
    a header names a `date` column, or the files' hive keys differ: the generic text scan handles those."""
    header = next(iter(headers.values()))
    names = {h.lower() for h in header}
    if any(h != header for h in headers.values()) or len(names) != len(header) or "date" in names:
        return None
    keys = {tuple(part.split("=", 1)[0].lower() for part in Path(f).parts if "=" in part) for f in headers}
    if len(keys) != 1 or next(iter(keys)).count("date") != 1:
        return None
    return header


def _csv_day_scan(files: list[Path], header: list[str], col: dict, cfg: CallLogConfig,
                  rejects: str = "_call_log_rej", scan: str = "_call_log_scan", as_text: bool = False) -> str:
    """A parallel typed scan of CSV day files of one `header` (timestamp TIMESTAMP, tokens DOUBLE, status
    an ENUM of the configured values; the `date=` folder as a DATE column). Every cast failure
    (unparseable timestamp, non-numeric count, unknown status) lands in DuckDB's rejects table with its
    line number and never needs a second read. `as_text`: every column VARCHAR (only malformed lines
    are rejected)."""
    source = {src.strip('"'): name for name, src in col.items() if src != "null"}
    statuses = ", ".join(quote_text(v) for v in dict.fromkeys([*cfg.status_ok, *cfg.status_failed]))
    kinds = {} if as_text else {"timestamp": "TIMESTAMP", "status": f"ENUM({statuses})" if statuses else "VARCHAR",
                                **{t: "DOUBLE" for t in TOKENS}}
    columns = ", ".join(f"{quote_text(h)}: {quote_text(kinds.get(source.get(h, ''), 'VARCHAR'))}" for h in header)
    # no force_not_null: DuckDB 1.5 applies it by position among the columns a query reads, so with an
    # unread column it hits the wrong ones; empty values stay NULL and fail the row checks instead
    return (f"read_csv({_sql_list(files)}, header = true, auto_detect = false, columns = {{{columns}}}, "
            f"hive_partitioning = true, hive_types = {{'date': DATE}}, buffer_size = {CSV_BUFFER_BYTES}, "
            f"store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{scan}')")


def _columns(con, reader: str, files: list[Path], cfg: CallLogConfig,
             headers: dict[Path, list[str]] | None) -> tuple[dict, dict]:
    """The mapped columns and their types: CSV `headers` are all text; Parquet is described by DuckDB."""
    try:
        if headers is not None:
            present = {name: "VARCHAR" for header in headers.values() for name in header}
        else:
            present = {r[0]: r[1] for r in con.execute(f"describe select * from {reader}").fetchall()}
    except duckdb.Error as exc:
        raise CallLogError(f"cannot read call-log file(s) {', '.join(str(f) for f in files)}: "
                           f"{str(exc).splitlines()[0]}") from None
    col, types = {}, {}
    for name in CANONICAL:
        source = cfg.columns.get(name)
        if source and source in present:
            col[name], types[name] = f'"{source}"', present[source]
        elif name in REQUIRED:
            raise CallLogError(f"{files[0]}: column '{source}' (mapped to {name}) not found; columns: {sorted(present)}")
        else:
            col[name] = "null"
    return col, types


def _checked(reader: str, row_number: str, col: dict, types: dict, day_expr: str, ok: str, failed: str,
             status_check: bool = True, where: str = "") -> str:
    """Every row of `reader` with its typed values, its day (`day_expr`: the partition day of its file, or
    the timestamp's day for flat files) and the reason it is rejected (null = valid).

    Type-aware: columns that arrive typed (Parquet BIGINT tokens, TIMESTAMP) skip the casts and the
    numeric-format checks that only text needs. Without `status_check` statuses are left to be judged
    per aggregated group (no per-row string comparison)."""
    ts, tok, _, _ = _typed(col, types)
    status = f"cast({col['status']} as varchar)" if col["status"] != "null" else "null"
    unknown = f"when status is not null and status not in ({ok}, {failed}) then 'unknown status'" \
        if status_check else ""
    day = day_expr.format(ts=ts)
    # typed values are computed once per row (inner select); the reason reads them by name
    text_tokens = [t for t in TOKENS if col[t] != "null" and types.get(t) not in INTEGER_TYPES]
    raw = "".join(f", {col[t]} as _raw_{t}" for t in text_tokens)
    bad_tokens = " or ".join(f"(_raw_{t} is not null and {t} is null) or {t} <> floor({t})" for t in text_tokens) \
        or "false"
    negative = " or ".join(f"{t} < 0" for t in TOKENS if col[t] != "null") or "false"
    return f"""
        select *,
               case
                   when ts is null then 'unparseable timestamp'
                   when ts < day::timestamp or ts >= day::timestamp + interval 1 day
                       then 'timestamp outside its day partition'
                   when model is null then 'missing model'
                   when prompt_tokens is null or completion_tokens is null then 'missing or non-numeric token count'
                   when {bad_tokens} then 'non-integer token count'
                   when {negative} then 'negative token count'
                   {unknown}
               end as reason
        from (
            select file_index, filename, {row_number} as row_number, {day} as day, {ts} as ts,
                   cast({col['model']} as varchar) as model, cast({col['provider']} as varchar) as provider,
                   {tok['prompt_tokens']} as prompt_tokens, {tok['completion_tokens']} as completion_tokens,
                   {tok['cached_tokens']} as cached_tokens, {tok['reasoning_tokens']} as reasoning_tokens,
                   {status} as status {raw}
            from {reader}
            {where})"""


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


_TEMP_TABLES = ("_call_log_batch", "_call_log_bad", "_call_log_cast_bad", "_file_day", "_call_log_p2",
                "_call_log_rej", "_call_log_scan", "_call_log_rej2", "_call_log_scan2")
_CAST_BAD_TABLE = "create or replace temp table _call_log_cast_bad (file_index bigint, day date, file varchar, " \
                  "row_number bigint, reason varchar)"
_BAD_TABLE = """create or replace temp table _call_log_bad (file_index bigint, day date, file varchar,
    row_number bigint, reason varchar, model varchar, provider varchar, status varchar, prompt_tokens double,
    completion_tokens double, cached_tokens double, reasoning_tokens double)"""


def _load_batch(con, days: dict[dt.date, list[Path]], cfg: CallLogConfig, from_flat: bool,
                started: float) -> dict[dt.date, dict]:
    """Pass 1 aggregates all rows per file and group; pass 2 reads only what pass 1 cannot settle and lists
    the bad rows with row number and reason (see the module docstring). Then the days are replaced in one
    transaction."""
    # taken before the read: a file that changes meanwhile keeps a stale fingerprint and is loaded again
    prints = {day: fingerprint(fs) for day, fs in days.items()}
    files = sorted({f for fs in days.values() for f in fs})
    fmt = _fmt(files)
    headers = _csv_headers(files) if fmt == "csv" else None
    col, types = _columns(con, _reader(files, fmt), files, cfg, headers)
    ok = ", ".join(quote_text(s) for s in cfg.status_ok) or "''"
    failed = ", ".join(quote_text(s) for s in cfg.status_failed) or "''"
    day_header = _csv_day_header(headers) if headers and not from_flat else None
    # one transaction for the whole batch: the days are replaced at its commit (or not at all), and the
    # many small statements on temp tables skip a commit each
    con.execute("begin transaction")
    try:
        if not from_flat:
            file_days = ", ".join(f"({i}, date '{_day_of(f, days)}', {quote_text(str(f))})" for i, f in enumerate(files))
            con.execute(f"create or replace temp table _file_day as select * from (values {file_days}) t(file_index, day, file)")
        if day_header:
            rejects = _csv_day_passes(con, files, day_header, col, cfg, ok, failed)
        else:
            rejects = _generic_passes(con, files, days, fmt, col, types, ok, failed, from_flat)
        results = _replace_days(con, days, prints, failed, rejects, subtract=not day_header, from_flat=from_flat,
                                started=started)
        con.execute("commit")
        return results
    except BaseException:
        con.execute("rollback")
        raise
    finally:  # temp tables live as long as the connection: dropped here, all in one call
        con.execute(";".join(["drop view if exists _batch_days", *(f"drop table if exists {t}" for t in _TEMP_TABLES)]))


def _csv_row_tests(v: dict, tokens: list[str], unknown_row: str) -> tuple[str, str]:
    """The per-row test of CSV day files and the reason a row fails it, over value expressions `v`
    (typed columns, or try_casts of text ones). abs(x) - floor(x) is 0 for a non-negative integral
    count, positive for a fraction or a negative count, NaN for NaN and infinities; the row total
    bounds each count (all are non-negative). One sum compared once costs fewer operations than a
    range-and-integrality test per column, and this runs on every row."""
    deviation = " + ".join(f"(abs({v[t]}) - floor({v[t]}))" if t in REQUIRED
                           else f"coalesce(abs({v[t]}) - floor({v[t]}), 0)" for t in tokens)
    total = " + ".join(v[t] if t in REQUIRED else f"coalesce({v[t]}, 0)" for t in tokens)
    clean = f"({deviation} = 0 and {total} < 9.2e18 and cast({v['timestamp']} as date) = \"date\") is true"
    reason = (f"case when {v['timestamp']} is null then 'unparseable timestamp' "
              f"when cast({v['timestamp']} as date) <> \"date\" then 'timestamp outside its day partition' "
              f"when {v['model']} is null then 'missing model' "
              f"when {v['prompt_tokens']} is null or {v['completion_tokens']} is null or "
              f"{' or '.join(f'not (abs({v[t]}) < 9.2e18)' for t in tokens)} "
              "then 'missing or non-numeric token count' "
              f"when {' or '.join(f'{v[t]} <> floor({v[t]})' for t in tokens)} then 'non-integer token count' "
              f"when {' or '.join(f'{v[t]} < 0' for t in tokens)} then 'negative token count' "
              f"when {total} >= 9.2e18 then 'token counts out of range' "
              f"when {unknown_row} then 'unknown status' end")
    return clean, reason


def _csv_day_passes(con, files: list[Path], header: list[str], col: dict, cfg: CallLogConfig, ok: str,
                    failed: str) -> list[str]:
    """CSV day files of one header (the scan of _csv_day_scan). Pass 1 groups every row by (file, model,
    provider, status, clean), `clean` being one cheap test per row (_csv_row_tests); the clean groups are
    the loaded totals as they are. Pass 2 (_csv_second_read) re-reads only the files holding unclean rows,
    a missing model or an unknown status. Returns the temp tables that hold rejected rows."""
    tokens = [t for t in TOKENS if col[t] != "null"]
    clean, _ = _csv_row_tests(col, tokens, "false")
    provider = col["provider"] if col["provider"] != "null" else "null::varchar"
    status = col["status"] if col["status"] != "null" else "null::varchar"
    unknown = f"(status is not null and cast(status as varchar) not in ({ok}, {failed}))"
    sums = ", ".join(f"sum({col[t]}) as {t}" if col[t] != "null" else f"null::double as {t}" for t in TOKENS)
    try:
        con.execute(f"""create or replace temp table _call_log_batch as
            select file_index, {col['model']} as model, {provider} as provider, {status} as status,
                   not {clean} as unclean, count(*) as requests, {sums}
            from {_csv_day_scan(files, header, col, cfg)} group by all""")
    except duckdb.Error as exc:
        raise CallLogError(f"cannot load call logs from {', '.join(str(f) for f in files)}: "
                           f"{str(exc).splitlines()[0]}") from None
    # the rows the typed scan could not cast, with DuckDB's line numbers (header = line 1), one per line
    # (judged by the type named in the message: DuckDB 1.5 names the wrong column when a query does not
    # read every column of the file; each checked field has its own type); skipped when the scan rejected
    # nothing, the common case
    cast_bad = con.execute("select count(*) from _call_log_rej").fetchone()[0] and con.execute(
        """create or replace temp table _call_log_cast_bad as
        select file_index, day, file, row_number, reason from (
            select f.file_index, f.day, f.file, e.line - 1 as row_number,
                   case when e.error_type <> 'CAST' then lower(cast(e.error_type as varchar))
                        when e.error_message like '%to ''TIMESTAMP''%' then 'unparseable timestamp'
                        when e.error_message like '%to ''ENUM%' then 'unknown status'
                        when e.error_message like '%to ''DOUBLE''%' then 'missing or non-numeric token count'
                        else 'unreadable value' end as reason,
                   row_number() over (partition by f.file_index, e.line order by e.column_idx) as nth
            from _call_log_rej e join _call_log_scan s using (scan_id, file_id)
            join _file_day f on f.file = s.file_path)
        where nth = 1""").fetchone()[0]
    rejects = ["_call_log_cast_bad"] if cast_bad else []
    # a view (the groups are read once, by _replace_days): cheaper than one more table
    con.execute(f"""create or replace temp view _batch_days as
        select b.file_index, null::date as row_day, b.model, b.provider, cast(b.status as varchar) as status,
               b.requests, b.prompt_tokens, b.completion_tokens, b.cached_tokens, b.reasoning_tokens, f.day
        from _call_log_batch b join _file_day f using (file_index)
        where not b.unclean and b.model is not null and not {unknown}""")
    set_aside = dict(con.execute(f"select file_index, sum(requests) from _call_log_batch "
                                 f"where unclean or model is null or {unknown} group by 1 order by 1").fetchall())
    if not set_aside:
        return rejects
    con.execute(_BAD_TABLE)
    if not cast_bad:  # pass 2 reads it
        con.execute(_CAST_BAD_TABLE)
    models = [m for (m,) in con.execute(f"select distinct model from _call_log_batch where (unclean or {unknown}) "
                                        "and model is not null").fetchall()]
    # first a text scan (no conversions but for the rows of the groups set aside); if it disagrees with
    # pass 1, the typed scan, which agrees by construction
    if not _csv_second_read(con, files, header, set_aside, col, cfg, ok, failed, models):
        con.execute(_BAD_TABLE)
        if not _csv_second_read(con, files, header, set_aside, col, cfg, ok, failed, None):
            bad = [str(files[i]) for i in set_aside]
            raise CallLogError(f"call-log file(s) {', '.join(bad)} changed while being loaded; load them again")
    return [*rejects, "_call_log_bad"]


def _csv_second_read(con, files: list[Path], header: list[str], set_aside: dict[int, int], col: dict,
                     cfg: CallLogConfig, ok: str, failed: str, models: list[str] | None) -> bool:
    """Pass 2 of CSV day files: re-read the files of `set_aside` in parallel into a temp table (CREATE
    TABLE AS keeps insertion order, so rowid numbers the rows), list the rows that fail the row test
    with row number and reason in _call_log_bad, and say whether they are exactly the rows pass 1 set
    aside. `models`: read the files as text and test only the rows of these models (and rows without
    one), through try_cast (the casts the typed scan makes); None: the typed scan itself."""
    for table in ("_call_log_p2", "_call_log_rej2", "_call_log_scan2"):
        con.execute(f"drop table if exists {table}")
    dirty = [files[i] for i in set_aside]
    tokens = [t for t in TOKENS if col[t] != "null"]
    status = col["status"] if col["status"] != "null" else "null::varchar"
    text_status = col["status"] != "null" and not (cfg.status_ok or cfg.status_failed)
    unknown_row = f"({status} is not null and {status} not in ({ok}, {failed}))" if text_status else "false"
    if models is None:
        values, candidate = dict(col), "true"
    else:
        values = {"timestamp": f"try_cast({col['timestamp']} as timestamp)", "model": col["model"],
                  **{t: f"try_cast({col[t]} as double)" for t in tokens}}
        listed_models = ", ".join(quote_text(m) for m in models) or "null"
        candidate = f"({col['model']} is null or {col['model']} in ({listed_models}))"
    clean, reason = _csv_row_tests(values, tokens, unknown_row)
    reader = _csv_day_scan(dirty, header, col, cfg, "_call_log_rej2", "_call_log_scan2", as_text=models is not None)
    # the typed scan reads status too, so it rejects the same lines as pass 1
    keep_status = f", {status} as status" if models is None and col["status"] != "null" else ""
    con.execute(f"""create temp table _call_log_p2 as
        select file_index, case when {candidate} and (not {clean} or {col['model']} is null or {unknown_row})
                                then {reason} end as reason {keep_status}
        from {reader}""")
    positions = ", ".join(f"({j}, {i})" for j, i in enumerate(set_aside))
    con.execute(f"""insert into _call_log_bad (file_index, day, file, row_number, reason)
        with numbered as (
            select m.file_index, p.rowid - s.first_row + 1 as ordinal, p.reason
            from _call_log_p2 p
            join (select file_index, min(rowid) as first_row from _call_log_p2 group by all) s using (file_index)
            join (values {positions}) m(dirty_index, file_index) on m.dirty_index = p.file_index
            where p.reason is not null),
        skipped as (  -- the lines this read rejected, ranked: a row's number is its ordinal plus those before it
            select file_index, line - 1 as row_number, row_number() over (partition by file_index order by line) as rank
            from (select distinct f.file_index, e.line from _call_log_rej2 e
                  join _call_log_scan2 s using (scan_id, file_id) join _file_day f on f.file = s.file_path)),
        found as (
            select n.file_index, f.day, f.file,
                   n.ordinal + (select count(*) from skipped k where k.file_index = n.file_index
                                and k.row_number - k.rank < n.ordinal) as row_number, n.reason
            from numbered n join _file_day f using (file_index))
        -- a text read also meets the rows pass 1 could not cast: they are listed already
        select * from found where (file_index, row_number) not in (select file_index, row_number from _call_log_cast_bad)""")
    listed = dict(con.execute("select file_index, count(*) from _call_log_bad group by 1").fetchall())
    # and the lines this read rejected must be among those the first read rejected
    extra = con.execute(f"""select count(*) from (
        select distinct f.file_index, e.line - 1 from _call_log_rej2 e join _call_log_scan2 s using (scan_id, file_id)
        join _file_day f on f.file = s.file_path
        except select file_index, row_number from _call_log_cast_bad)""").fetchone()[0]
    return extra == 0 and all(listed.get(i, 0) == n for i, n in set_aside.items())


def _generic_passes(con, files: list[Path], days: dict[dt.date, list[Path]], fmt: str, col: dict, types: dict,
                    ok: str, failed: str, from_flat: bool) -> list[str]:
    """Parquet, flat files and CSV files of differing headers: pass 1 aggregates all rows by (file, day,
    model, provider, status) with counts and token sums (and, except on the typed-Parquet fast path, the
    timestamp range and the rows failing the cheap checks); pass 2 lists the bad rows, which
    _replace_days subtracts from pass 1's groups. Returns the temp tables that hold rejected rows."""
    reader = _reader(files, fmt)
    ts, tok, format_checks, negatives = _typed(col, types)
    checks = [f"{ts} is null", f"{col['model']} is null", f"{tok['prompt_tokens']} is null",
              f"{tok['completion_tokens']} is null", *format_checks, *negatives]
    status = f"cast({col['status']} as varchar)" if col["status"] != "null" else "null"
    day_key = f"cast({ts} as date)" if from_flat else "null::date"
    parquet = fmt == "parquet"
    # typed Parquet in day folders: the row-group statistics say which files may hold bad rows, so pass 1
    # is a plain aggregation and pass 2 reads only the row groups the statistics cannot clear
    fast = parquet and not from_flat and types.get("timestamp", "").startswith("TIMESTAMP") and all(
        col[t] == "null" or types.get(t) in INTEGER_TYPES for t in TOKENS)
    # Parquet: pass 1 also collects the rows failing the cheap checks (few) with their row numbers and
    # values, at almost no cost; CSV has no row numbers, so its bad rows come from pass 2
    lean = reader.replace("filename = true, ", "").replace("file_row_number = true, ", "") if fast else \
        reader.replace("filename = true, ", "")
    collect = (f", list({{'row_number': file_row_number + 1, 'ts': {ts}, 'model': {col['model']}, "
               f"'prompt': {tok['prompt_tokens']}, 'completion': {tok['completion_tokens']}, "
               f"'cached': {tok['cached_tokens']}, 'reasoning': {tok['reasoning_tokens']}}}) "
               f"filter (where {' or '.join(checks)}) as bad_rows") if parquet and not fast else ""
    validity = "" if fast else (f", min({ts}) as ts_min, max({ts}) as ts_max, "
                                f"count(*) filter (where {' or '.join(checks)}) as n_bad")

    def text(c: str) -> str:  # no cast where the column already is text
        return col[c] if types.get(c) == "VARCHAR" or col[c] == "null" else f"cast({col[c]} as varchar)"

    try:
        con.execute(f"""create or replace temp table _call_log_batch as
            select file_index, {day_key} as row_day, {text('model')} as model,
                   {text('provider')} as provider, {text('status')} as status, count(*) as requests,
                   {', '.join(f'sum({tok[t]}) as {t}' for t in TOKENS)} {validity} {collect}
            from {lean} group by all""")
    except duckdb.Error as exc:
        raise CallLogError(f"cannot load call logs from {', '.join(str(f) for f in files)}: "
                           f"{str(exc).splitlines()[0]}") from None
    if from_flat:
        # a row's day is its timestamp's; a row whose timestamp does not parse has none, so its reject is
        # listed under the first day the files cover (whichever days this batch loads: not dropped, once)
        first_day = f"date '{con.execute('select min(row_day) from _call_log_batch').fetchone()[0]}'"
        con.execute(f"create or replace temp view _batch_days as "
                    f"select *, coalesce(row_day, {first_day}) as day from _call_log_batch")
    else:  # views: the groups are few, and a view costs less than one more table
        con.execute("create or replace temp view _batch_days as select b.*, f.day from _call_log_batch b "
                    "join _file_day f using (file_index)")
    out_of_day = "false" if from_flat else "ts_min < day::timestamp or ts_max >= day::timestamp + interval 1 day"
    unknown_status = f"(status is not null and status not in ({ok}, {failed}))"
    # pass 2 only for files whose problems pass 1 cannot list: any bad row in CSV; in Parquet, a
    # timestamp outside the file's day or an unknown status
    unknown = con.execute(f"select distinct file_index, status from _batch_days where {unknown_status}").fetchall()
    unknown_values = ", ".join(sorted({quote_text(v) for _, v in unknown}))
    if fast:
        suspects = _suspect_predicates(con, files, days, col)
        for i in sorted({i for i, _ in unknown}):
            suspects.setdefault(files[i], []).append(f"cast({col['status']} as varchar) in ({unknown_values})")
        dirty = sorted(suspects)
    else:
        rescan = f"n_bad > 0 or {out_of_day} or {unknown_status}" if not parquet else f"{out_of_day} or {unknown_status}"
        dirty = [files[i] for (i,) in con.execute(
            f"select distinct file_index from _batch_days where {rescan} order by 1").fetchall()]
    if not dirty and (fast or not parquet):
        return []  # no bad rows (the common case): no reject table, nothing to subtract
    con.execute(_BAD_TABLE)
    if parquet and not fast:
        file_names = ", ".join(f"({i}, {quote_text(str(f))})" for i, f in enumerate(files))
        con.execute(f"""insert into _call_log_bad
            select b.file_index, b.day, n.file, r.row_number,
                   case when r.ts is null then 'unparseable timestamp'
                        when r.model is null then 'missing model'
                        when r.prompt is null or r.completion is null then 'missing or non-numeric token count'
                        else 'negative token count' end,
                   b.model, b.provider, b.status, r.prompt, r.completion, r.cached, r.reasoning
            from (select *, unnest(bad_rows) as r from _batch_days where n_bad > 0) b
            join (values {file_names}) n(file_index, file) using (file_index)""")
    for path in dirty:
        index, quoted = files.index(path), str(path).replace("'", "''")
        file_day = f"coalesce(cast({{ts}} as date), {first_day})" if from_flat else f"date '{_day_of(path, days)}'"
        if fast:
            # one scan per suspect predicate, each a single-column filter that DuckDB checks against the
            # row-group statistics, so only the row groups that may hold such rows are read
            one = "(" + " union ".join(f"select *, file_index from {_reader([path], fmt)} where {pred}"
                                       for pred in suspects[path]) + ")"
            number = "file_row_number + 1"
        elif parquet:
            # only the rows pass 1 did not list (out of the day, unknown status), found with simple
            # predicates that DuckDB pushes into the Parquet scan
            preds = []
            if not from_flat:
                preds += [f"{ts} < {file_day}::timestamp", f"{ts} >= {file_day}::timestamp + interval 1 day"]
            if unknown_values:
                preds.append(f"{status} in ({unknown_values})")
            one = (f"(select *, file_index from {_reader([path], fmt)} "
                   f"where ({' or '.join(preds) or 'false'}) and not ({' or '.join(checks)}))")
            number = "file_row_number + 1"
        else:  # CSV has no row-number column: re-read the file in order, numbered
            one = (f"read_csv(['{quoted}'], filename = true, all_varchar = true, header = true, parallel = false, "
                   "hive_partitioning = false)")
            number = "row_number() over ()"
        checked = _checked(one, number, col, types if parquet else {}, file_day, ok, failed)
        try:
            con.execute(f"""insert into _call_log_bad select {index}, day, filename, row_number, reason, model,
                            provider, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens
                            from ({checked}) where reason is not null""")
        except duckdb.Error as exc:
            raise CallLogError(f"cannot read call-log file {path}: {str(exc).splitlines()[0]}") from None
    return ["_call_log_bad"]


def _replace_days(con, days: dict[dt.date, list[Path]], prints: dict[dt.date, str], failed: str,
                  rejects: list[str], subtract: bool, from_flat: bool, started: float) -> dict[dt.date, dict]:
    """Delete + insert the batch's days (in the batch's transaction): the valid groups (pass 1's groups less the bad
    rows of the same file and group when `subtract`), the rejects (the temp tables `rejects`), and each day's row of
    meta.call_log_partitions (SQL literals: dates, hex digests and numbers; binding Python parameters
    would import pandas, ~0.5 s, in a fresh process)."""
    wanted = ", ".join(f"date '{d}'" for d in days)
    # flat files group rows by their timestamp's day: none for an unparseable one (listed under the
    # first day, see _generic_passes)
    row_day = "case when reason = 'unparseable timestamp' then null else day end" if from_flat else "null::date"
    valid_rows = f"""
        select g.day, g.model, g.provider, g.status,
               g.requests - coalesce(b.requests, 0) as requests,
               coalesce(g.prompt_tokens, 0) - coalesce(b.prompt_tokens, 0) as prompt_tokens,
               coalesce(g.completion_tokens, 0) - coalesce(b.completion_tokens, 0) as completion_tokens,
               g.cached_tokens - coalesce(b.cached_tokens, 0) as cached_tokens,
               g.reasoning_tokens - coalesce(b.reasoning_tokens, 0) as reasoning_tokens
        from _batch_days g
        left join (select file_index, {row_day} as row_day, model, provider, status, count(*) as requests,
                          sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
                          sum(cached_tokens) as cached_tokens, sum(reasoning_tokens) as reasoning_tokens
                   from _call_log_bad group by all) b
          on b.file_index = g.file_index and b.row_day is not distinct from g.row_day
         and b.model is not distinct from g.model and b.provider is not distinct from g.provider
         and b.status is not distinct from g.status
        where g.day in ({wanted}) and g.requests - coalesce(b.requests, 0) > 0""" \
        if subtract and "_call_log_bad" in rejects else f"""
        select day, model, provider, status, requests, prompt_tokens, completion_tokens, cached_tokens,
               reasoning_tokens
        from _batch_days where day in ({wanted})"""
    con.execute(f"delete from raw.call_log_daily where day in ({wanted})")
    con.execute(f"delete from raw.call_log_rejects where day in ({wanted})")
    con.execute(f"""insert into raw.call_log_daily
        select day, model, provider, sum(requests), coalesce(sum(requests) filter (where status in ({failed})), 0),
               cast(sum(prompt_tokens) as bigint), cast(sum(completion_tokens) as bigint),
               cast(sum(cached_tokens) as bigint), cast(sum(reasoning_tokens) as bigint)
        from ({valid_rows}) group by day, model, provider""")
    if rejects:
        all_bad = " union all ".join(f"select day, file, row_number, reason from {t}" for t in rejects)
        con.execute(f"insert into raw.call_log_rejects select * from ({all_bad}) where day in ({wanted})")
    seconds = (time.perf_counter() - started) / len(days)
    recorded = ", ".join(f"(date '{d}', '{prints[d]}', {len(fs)})" for d, fs in days.items())
    con.execute(f"delete from meta.call_log_partitions where day in ({wanted})")
    counts = con.execute(f"""insert into meta.call_log_partitions
        select d.day, d.fingerprint, d.files, coalesce(l.n, 0), coalesce(r.n, 0), current_timestamp, {seconds}
        from (values {recorded}) d(day, fingerprint, files)
        left join (select day, sum(requests) as n from raw.call_log_daily where day in ({wanted}) group by 1) l
          using (day)
        left join (select day, count(*) as n from raw.call_log_rejects where day in ({wanted}) group by 1) r
          using (day)
        returning day, files, rows_loaded, rows_rejected, seconds""").fetchall()
    return {d: {"day": d, "files": n, "rows_loaded": int(loaded), "rows_rejected": int(rejected), "seconds": secs}
            for d, n, loaded, rejected, secs in counts}


def _suspect_predicates(con, files: list[Path], days: dict[dt.date, list[Path]], col: dict) -> dict[Path, list[str]]:
    """Per file, the single-column predicates that may match bad rows, judged from the Parquet row-group
    statistics (null counts, min and max). A column without statistics is suspect on every count."""
    names = {name: src.strip('"') for name, src in col.items() if src != "null"}
    wanted = ", ".join("'" + v.replace("'", "''") + "'" for v in names.values())
    stats = con.execute(f"""
        select file_name, path_in_schema,
               sum(stats_null_count) filter (where stats_null_count is not null) as nulls,
               count(*) filter (where stats_null_count is null) as no_null_stats,
               count(*) filter (where stats_min_value is null or stats_max_value is null) as no_range,
               min(try_cast(stats_min_value as double)) as min_num,
               min(try_cast(stats_min_value as timestamp)) as min_ts,
               max(try_cast(stats_max_value as timestamp)) as max_ts
        from parquet_metadata({_sql_list(files)})
        where path_in_schema in ({wanted})
        group by all""").fetchall()
    by_file: dict[str, dict[str, tuple]] = {}
    for file_name, column, nulls, no_null_stats, no_range, min_num, min_ts, max_ts in stats:
        by_file.setdefault(file_name, {})[column] = (bool(nulls) or no_null_stats > 0, no_range > 0, min_num,
                                                     min_ts, max_ts)
    out: dict[Path, list[str]] = {}
    for path in files:
        day = _day_of(path, days)
        start, end = dt.datetime.combine(day, dt.time()), dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        cols = by_file.get(str(path), {})
        preds = []
        for name in ("timestamp", "model", *TOKENS):
            if name not in names:
                continue
            has_nulls, no_range, min_num, min_ts, max_ts = cols.get(names[name], (True, True, None, None, None))
            q = col[name]
            if has_nulls and (name in REQUIRED):
                preds.append(f"{q} is null")
            if name == "timestamp":
                if no_range or min_ts is None or min_ts < start:
                    preds.append(f"{q} < timestamp '{start}'")
                if no_range or max_ts is None or max_ts >= end:
                    preds.append(f"{q} >= timestamp '{end}'")
            elif name in TOKENS and (no_range or min_num is None or min_num < 0):
                preds.append(f"{q} < 0")
        if preds:
            out[path] = preds
    return out


def _day_of(path: Path, days: dict[dt.date, list[Path]]) -> dt.date:
    return next(d for d, fs in days.items() if path in fs)
