"""Call logs, CSV files in day folders of one header: pass 1 is one parallel typed scan grouped by a
cheap per-row test, pass 2 re-reads only the files holding rows that test sets aside (see
csv_day_passes). Other CSV layouts take the generic path (call_logs/generic.py)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import duckdb

from call_logs.config import (BAD_TABLE, CAST_BAD_TABLE, CSV_BUFFER_BYTES, REQUIRED, TOKENS, CallLogConfig,
                              CallLogError, ColumnMap, sql_list)
from call_logs.rules import reject_reason, render
from warehouse.io import quote_text


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def csv_headers(files: list[Path]) -> dict[Path, list[str]]:
    """Each CSV file's header fields, from its first line (read once per batch: asking DuckDB to describe
    a union_by_name scan would sniff every file)."""
    try:
        return {path: _csv_header(path) for path in files}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CallLogError(f"cannot read the header of call-log file(s) {', '.join(str(f) for f in files)}: "
                           f"{exc}") from None


def csv_day_header(headers: dict[Path, list[str]]) -> list[str] | None:
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


def _csv_day_scan(files: list[Path], header: list[str], col: ColumnMap, cfg: CallLogConfig,
                  rejects: str = "_call_log_rej", scan: str = "_call_log_scan", as_text: bool = False) -> str:
    """A parallel typed scan of CSV day files of one `header` (timestamp TIMESTAMP, tokens DOUBLE, status
    an ENUM of the configured values; the `date=` folder as a DATE column). Every cast failure
    (unparseable timestamp, non-numeric count, unknown status) lands in DuckDB's rejects table with its
    line number and never needs a second read. `as_text`: every column VARCHAR (only malformed lines
    are rejected)."""
    source = col.canonical_by_source()
    statuses = ", ".join(quote_text(v) for v in dict.fromkeys([*cfg.status_ok, *cfg.status_failed]))
    kinds = {} if as_text else {"timestamp": "TIMESTAMP", "status": f"ENUM({statuses})" if statuses else "VARCHAR",
                                **{t: "DOUBLE" for t in TOKENS}}
    columns = ", ".join(f"{quote_text(h)}: {quote_text(kinds.get(source.get(h, ''), 'VARCHAR'))}" for h in header)
    # no force_not_null: DuckDB 1.5 applies it by position among the columns a query reads, so with an
    # unread column it hits the wrong ones; empty values stay NULL and fail the row checks instead
    return (f"read_csv({sql_list(files)}, header = true, auto_detect = false, columns = {{{columns}}}, "
            f"hive_partitioning = true, hive_types = {{'date': DATE}}, buffer_size = {CSV_BUFFER_BYTES}, "
            f"store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{scan}')")


def _deviation(v: dict[str, str]) -> str:
    """abs(x) - floor(x) summed over a row's counts: 0 when all are non-negative integers, positive for
    a fraction or a negative count, NaN for NaN and infinities (null for a missing required count).
    One sum compared once costs fewer operations than a test per column, and it runs on every row."""
    return " + ".join(f"(abs({v[t]}) - floor({v[t]}))" if t in REQUIRED
                      else f"coalesce(abs({v[t]}) - floor({v[t]}), 0)" for t in v)


def _row_total(v: dict[str, str]) -> str:
    return " + ".join(v[t] if t in REQUIRED else f"coalesce({v[t]}, 0)" for t in v)


def csv_day_passes(con, files: list[Path], header: list[str], col: ColumnMap, cfg: CallLogConfig, ok: str,
                    failed: str) -> list[str]:
    """CSV day files of one header (the scan of _csv_day_scan). Pass 1 groups every row by (file,
    timestamp's day, model, provider, status, unclean), `unclean` being one cheap test per row (_deviation
    is not 0); the groups that are clean and in their file's day are the loaded totals as they are. Pass
    2 (_csv_second_read) re-reads only the files holding the other groups (unclean, another day, a
    missing model or an unknown status) and lists their rows. Returns the temp tables of rejected rows.

    The day is a group key rather than a per-row comparison, and the row total is not tested per row:
    a clean group whose token total reaches BIGINT's range (a count of 1e19 is integral, so clean)
    makes pass 1 run again with the full row test (_csv_row_tests), which sets such rows aside. Both
    keep pass 1 near a bare scan (bench/ingest_bench.py: about 10% less CPU than testing them per row).
    `unclean` only sorts rows cheaply; the reasons come from the row rules (call_logs/rules.py)."""
    tokens = col.tokens
    values = {t: col.sql(t) for t in tokens}
    provider = col.sql("provider") if col.has("provider") else "null::varchar"
    status = col.sql("status") if col.has("status") else "null::varchar"
    unknown = f"(status is not null and cast(status as varchar) not in ({ok}, {failed}))"
    sums = ", ".join(f"sum({col.sql(t)}) as {t}" if col.has(t) else f"null::double as {t}" for t in TOKENS)
    group_total = " + ".join(f"coalesce({t}, 0)" for t in tokens)
    for strict in (False, True):
        in_range = f" and {_row_total(values)} < 9.2e18" if strict else ""
        unclean = f"not ({_deviation(values)} = 0{in_range}) is true"
        con.execute("drop table if exists _call_log_rej; drop table if exists _call_log_scan")
        try:
            con.execute(render("csv_pass1", ts=col.sql("timestamp"), model=col.sql("model"), provider=provider,
                               status=status, unclean=unclean, sums=sums,
                               reader=_csv_day_scan(files, header, col, cfg)))
        except duckdb.Error as exc:
            raise CallLogError(f"cannot load call logs from {', '.join(str(f) for f in files)}: "
                               f"{str(exc).splitlines()[0]}") from None
        if strict or not con.execute(f"select count(*) from _call_log_batch where not unclean "
                                     f"and {group_total} >= 9.2e18").fetchone()[0]:
            break
    # the rows the typed scan could not cast, with DuckDB's line numbers (sql/call_logs/csv_cast_rejects.sql.j2);
    # skipped when the scan rejected nothing, the common case
    cast_bad = con.execute("select count(*) from _call_log_rej").fetchone()[0] and con.execute(
        render("csv_cast_rejects")).fetchone()[0]
    rejects = ["_call_log_cast_bad"] if cast_bad else []
    # a view (the groups are read once, by _replace_days): cheaper than one more table
    settled = f"not b.unclean and b.ts_day = f.day and b.model is not null and not {unknown}"
    con.execute(f"""create or replace temp view _batch_days as
        select b.file_index, null::date as row_day, b.model, b.provider, cast(b.status as varchar) as status,
               b.requests, b.prompt_tokens, b.completion_tokens, b.cached_tokens, b.reasoning_tokens, f.day
        from _call_log_batch b join _file_day f using (file_index)
        where {settled}""")
    # the groups set aside: their rows per file, and their models (pass 2 tests only rows of these)
    aside = con.execute(f"select file_index, sum(requests), coalesce(list(distinct b.model) filter (b.model is not "
                        f"null), []) from _call_log_batch b join _file_day f using (file_index) "
                        f"where not ({settled}) is true group by 1 order by 1").fetchall()
    if not aside:
        return rejects
    set_aside = {i: n for i, n, _ in aside}
    models = sorted({m for *_, file_models in aside for m in file_models})
    con.execute(BAD_TABLE)
    if not cast_bad:  # pass 2 reads it
        con.execute(CAST_BAD_TABLE)
    # first a text scan (no conversions but for the rows of the groups set aside); if it disagrees with
    # pass 1, the typed scan, which agrees by construction
    if not _csv_second_read(con, files, header, set_aside, col, cfg, ok, failed, models):
        con.execute(BAD_TABLE)
        if not _csv_second_read(con, files, header, set_aside, col, cfg, ok, failed, None):
            bad = [str(files[i]) for i in set_aside]
            raise CallLogError(f"call-log file(s) {', '.join(bad)} changed while being loaded; load them again")
    return [*rejects, "_call_log_bad"]


def _csv_second_read(con, files: list[Path], header: list[str], set_aside: dict[int, int], col: ColumnMap,
                     cfg: CallLogConfig, ok: str, failed: str, models: list[str] | None) -> bool:
    """Pass 2 of CSV day files: re-read the files of `set_aside` in parallel into a temp table (CREATE
    TABLE AS keeps insertion order, so rowid numbers the rows), list the rows that break a row rule
    with row number and reason in _call_log_bad, and say whether they are exactly the rows pass 1 set
    aside. `models`: read the files as text and test only the rows of these models (and rows without
    one), through try_cast (the casts the typed scan makes); None: the typed scan itself."""
    con.execute("drop table if exists _call_log_p2; drop table if exists _call_log_rej2; "
                "drop table if exists _call_log_scan2")
    dirty = [files[i] for i in set_aside]
    tokens = col.tokens
    status = col.sql("status") if col.has("status") else "null::varchar"
    # configured statuses make the typed scan's status an ENUM: an unknown one is a cast failure there
    text_status = col.has("status") and not (cfg.status_ok or cfg.status_failed)
    unknown_row = f"({status} is not null and {status} not in ({ok}, {failed}))" if text_status else "false"
    model = col.sql("model")
    if models is None:
        reason = reject_reason(col.sql("timestamp"), '"date"', model, {t: col.sql(t) for t in tokens}, unknown_row)
        candidate = "true"
    else:
        reason = reject_reason(f"try_cast({col.sql('timestamp')} as timestamp)", '"date"', model,
                               {t: f"try_cast({col.sql(t)} as double)" for t in tokens}, unknown_row,
                               raw={t: col.sql(t) for t in tokens})
        listed_models = ", ".join(quote_text(m) for m in models) or "null"
        candidate = f"({model} is null or {model} in ({listed_models}))"
    reader = _csv_day_scan(dirty, header, col, cfg, "_call_log_rej2", "_call_log_scan2", as_text=models is not None)
    # the typed scan reads status too, so it rejects the same lines as pass 1
    keep_status = f", {status} as status" if models is None and col.has("status") else ""
    con.execute(f"""create temp table _call_log_p2 as
        select file_index, case when {candidate} then {reason} end as reason {keep_status}
        from {reader}""")
    positions = ", ".join(f"({j}, {i})" for j, i in enumerate(set_aside))
    con.execute(render("csv_pass2_rows", positions=positions))
    listed = dict(con.execute("select file_index, count(*) from _call_log_bad group by 1").fetchall())
    # and the lines this read rejected must be among those the first read rejected
    extra = con.execute(render("csv_pass2_extra_rejects")).fetchone()[0]
    return extra == 0 and all(listed.get(i, 0) == n for i, n in set_aside.items())
